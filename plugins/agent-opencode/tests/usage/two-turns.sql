PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE `message` (
          `id` text PRIMARY KEY,
          `session_id` text NOT NULL,
          `time_created` integer NOT NULL,
          `time_updated` integer NOT NULL,
          `data` text NOT NULL,
          CONSTRAINT `fk_message_session_id_session_id_fk` FOREIGN KEY (`session_id`) REFERENCES `session`(`id`) ON DELETE CASCADE
        );
INSERT INTO message VALUES('msg_252a9efbd001NjMVxggPhgzyPZ','ses_dad5615c1ffeSno8mbxf4U3aXC',1796683198397,1796683242012,'{"role":"user","time":{"created":1796683198397},"agent":"build","model":{"providerID":"standin","modelID":"standin-model"},"summary":{"diffs":[]}}');
INSERT INTO message VALUES('msg_252aa2424001vQhfdwBfQMKEhs','ses_dad5615c1ffeSno8mbxf4U3aXC',1796683211812,1796683238926,'{"parentID":"msg_252a9efbd001NjMVxggPhgzyPZ","role":"assistant","mode":"build","agent":"build","path":{"cwd":"/tmp/ocx/proj2","root":"/tmp/ocx/proj2"},"cost":0,"tokens":{"total":2036,"input":1811,"output":23,"reasoning":2,"cache":{"write":0,"read":200}},"modelID":"standin-model","providerID":"standin","time":{"created":1796683211812,"completed":1796683238894},"finish":"tool-calls"}');
INSERT INTO message VALUES('msg_252aa8e4d001m7vK7brcU0n8wM','ses_dad5615c1ffeSno8mbxf4U3aXC',1796683238989,1796683243665,'{"parentID":"msg_252a9efbd001NjMVxggPhgzyPZ","role":"assistant","mode":"build","agent":"build","path":{"cwd":"/tmp/ocx/proj2","root":"/tmp/ocx/proj2"},"cost":0,"tokens":{"total":3046,"input":2711,"output":32,"reasoning":3,"cache":{"write":0,"read":300}},"modelID":"standin-model","providerID":"standin","time":{"created":1796683238989,"completed":1796683243642},"finish":"stop"}');
INSERT INTO message VALUES('msg_252ab30e8001NnCq4moXJlHwdX','ses_dad5615c1ffeSno8mbxf4U3aXC',1796683280617,1796683309145,'{"role":"user","time":{"created":1796683280617},"agent":"build","model":{"providerID":"standin","modelID":"standin-model"},"summary":{"diffs":[]}}');
INSERT INTO message VALUES('msg_252ab5e64001Ksi7dPScAnfZ6z','ses_dad5615c1ffeSno8mbxf4U3aXC',1796683292260,1796683308116,'{"parentID":"msg_252ab30e8001NnCq4moXJlHwdX","role":"assistant","mode":"build","agent":"build","path":{"cwd":"/tmp/ocx/proj2","root":"/tmp/ocx/proj2"},"cost":0,"tokens":{"total":4056,"input":3611,"output":41,"reasoning":4,"cache":{"write":0,"read":400}},"modelID":"standin-model","providerID":"standin","time":{"created":1796683292260,"completed":1796683308114},"finish":"tool-calls"}');
INSERT INTO message VALUES('msg_252ab8921001eYrkydrQT33xx0','ses_dad5477b3ffeXDHVdlDsvY7M5U',1796683303203,1796683308928,'{"role":"user","time":{"created":1796683303203},"agent":"general","model":{"providerID":"standin","modelID":"standin-model"},"summary":{"diffs":[]}}');
INSERT INTO message VALUES('msg_252ab8ac9001bElXRJoKZyiEy0','ses_dad5477b3ffeXDHVdlDsvY7M5U',1796683303625,1796683306558,'{"parentID":"msg_252ab8921001eYrkydrQT33xx0","role":"assistant","mode":"general","agent":"general","path":{"cwd":"/tmp/ocx/proj2","root":"/tmp/ocx/proj2"},"cost":0,"tokens":{"total":5066,"input":4511,"output":50,"reasoning":5,"cache":{"write":0,"read":500}},"modelID":"standin-model","providerID":"standin","time":{"created":1796683303625,"completed":1796683306549},"finish":"stop"}');
INSERT INTO message VALUES('msg_252ab9c6b001zboL9z1hhliXtk','ses_dad5615c1ffeSno8mbxf4U3aXC',1796683308139,1796683309546,'{"parentID":"msg_252ab30e8001NnCq4moXJlHwdX","role":"assistant","mode":"build","agent":"build","path":{"cwd":"/tmp/ocx/proj2","root":"/tmp/ocx/proj2"},"cost":0,"tokens":{"total":6076,"input":5411,"output":59,"reasoning":6,"cache":{"write":0,"read":600}},"modelID":"standin-model","providerID":"standin","time":{"created":1796683308139,"completed":1796683309545},"finish":"stop"}');
CREATE TABLE `session` (
          `id` text PRIMARY KEY,
          `project_id` text NOT NULL,
          `workspace_id` text,
          `parent_id` text,
          `slug` text NOT NULL,
          `directory` text NOT NULL,
          `path` text,
          `title` text NOT NULL,
          `version` text NOT NULL,
          `share_url` text,
          `summary_additions` integer,
          `summary_deletions` integer,
          `summary_files` integer,
          `summary_diffs` text,
          `metadata` text,
          `cost` real DEFAULT 0 NOT NULL,
          `tokens_input` integer DEFAULT 0 NOT NULL,
          `tokens_output` integer DEFAULT 0 NOT NULL,
          `tokens_reasoning` integer DEFAULT 0 NOT NULL,
          `tokens_cache_read` integer DEFAULT 0 NOT NULL,
          `tokens_cache_write` integer DEFAULT 0 NOT NULL,
          `revert` text,
          `permission` text,
          `agent` text,
          `model` text,
          `time_created` integer NOT NULL,
          `time_updated` integer NOT NULL,
          `time_compacting` integer,
          `time_archived` integer,
          CONSTRAINT `fk_session_project_id_project_id_fk` FOREIGN KEY (`project_id`) REFERENCES `project`(`id`) ON DELETE CASCADE
        );
INSERT INTO session VALUES('ses_dad5615c1ffeSno8mbxf4U3aXC','global',NULL,NULL,'quick-wizard','/tmp/ocx/proj2','','Title','1.18.33',NULL,0,0,0,NULL,NULL,0.0,13544,155,15,1500,0,NULL,'[{"permission":"question","pattern":"*","action":"deny"},{"permission":"plan_enter","pattern":"*","action":"deny"},{"permission":"plan_exit","pattern":"*","action":"deny"}]','build','{"id":"standin-model","providerID":"standin","variant":"default"}',1796683196990,1796683309749,NULL,NULL);
INSERT INTO session VALUES('ses_dad5477b3ffeXDHVdlDsvY7M5U','global',NULL,'ses_dad5615c1ffeSno8mbxf4U3aXC','brave-garden','/tmp/ocx/proj2','','sub work (@general subagent)','1.18.33',NULL,0,0,0,NULL,NULL,0.0,4511,50,5,500,0,NULL,'[{"permission":"question","pattern":"*","action":"deny"},{"permission":"plan_enter","pattern":"*","action":"deny"},{"permission":"plan_exit","pattern":"*","action":"deny"},{"permission":"task","pattern":"*","action":"deny"}]','general','{"id":"standin-model","providerID":"standin","variant":"default"}',1796683303036,1796683306837,NULL,NULL);
COMMIT;
