//! The usage checks: an agent plugin's `usage` (0.1.9) answers for a session without records,
//! survives a cursor it never wrote and a budget of nothing, and — with
//! [`check_usage_records`], from the plugin crate's own tests — counts recorded files exactly.
//!
//! The host calls `usage` on every listing, with whatever cursor its data dir kept (one of an
//! older plugin, or damaged) and a byte budget: an answer that fails, hangs or panics there costs
//! every listing its usage column, and a number counted twice is worse than none.

use ao_plugin_api::{
    abi_stable::std_types::RString,
    usage::{ModelUsage, UsageQuery, UsageReport},
    Agent, AgentSession, PluginErrorKind,
};
use ao_plugin_host::{AgentPlugin, PluginCallError};

use super::Kit;

/// A cursor no plugin writes: bytes of no format, half a JSON document.
const GARBAGE_CURSOR: &str = "\u{0}{\"not\": a cursor ÿ";

/// What a session with no records may answer.
enum Outcome {
    /// `NotFound`, or a report that counted nothing.
    Nothing(String),
    /// The plugin does not read usage (its sessions show "unknown").
    Unsupported,
}

fn no_records(answer: Result<UsageReport, PluginCallError>) -> Result<Outcome, String> {
    match answer {
        Ok(report) if report.usage.is_empty() => {
            Ok(Outcome::Nothing("a report that counted nothing".into()))
        }
        Ok(report) => Err(format!(
            "counted {:?} for a session that made no reply: a listing would show usage that \
             never happened",
            report.usage
        )),
        Err(e) if e.kind() == PluginErrorKind::NotFound => Ok(Outcome::Nothing(format!(
            "NotFound ({})",
            e.plugin_message()
        ))),
        Err(e) if e.kind() == PluginErrorKind::Unsupported => Ok(Outcome::Unsupported),
        Err(e) => Err(format!(
            "{e}: with no records the answer is NotFound (the host shows none), not a failure"
        )),
    }
}

/// A conversation id of the shape agent CLIs use (a UUID) that no agent ever made, so a plugin
/// that checks the shape of ids still answers "no records" for it.
const NO_SUCH_CONVERSATION: &str = "00000000-0000-4000-8000-00000000a0c7";

pub(super) async fn check(kit: &mut Kit<'_>, agent: &AgentPlugin, session: &AgentSession) {
    let query = |conversation: Option<&str>, cursor: &str, max_bytes: u64| UsageQuery {
        session: session.clone(),
        conversation_id: conversation.map(RString::from).into(),
        cursor: cursor.into(),
        max_bytes,
    };
    let first = no_records(agent.usage(&query(None, "", 1 << 20)).await);
    if let Ok(Outcome::Unsupported) = first {
        kit.skip(
            "usage",
            "not supported: the plugin does not read what its sessions use (shown as unknown)"
                .into(),
        );
        return;
    }
    let named = no_records(
        agent
            .usage(&query(Some(NO_SUCH_CONVERSATION), "", 1 << 20))
            .await,
    );
    kit.record(
        "usage: no records",
        first
            .and_then(|first| Ok((first, named?)))
            .map(|answers| match answers {
                (Outcome::Nothing(first), Outcome::Nothing(named)) => {
                    format!("no conversation: {first}; an unknown one: {named}")
                }
                _ => "unsupported for one session but not another".into(),
            }),
    );
    let garbage = no_records(
        agent
            .usage(&query(Some(NO_SUCH_CONVERSATION), GARBAGE_CURSOR, 1 << 20))
            .await,
    );
    kit.record(
        "usage: a garbage cursor",
        garbage.map(|_| "read as no cursor: counted from the start".into()),
    );
    let mut budgets = Vec::new();
    for max_bytes in [0, 1] {
        budgets.push(
            no_records(
                agent
                    .usage(&query(Some(NO_SUCH_CONVERSATION), "", max_bytes))
                    .await,
            )
            .map_err(|e| format!("max_bytes {max_bytes}: {e}")),
        );
    }
    kit.record(
        "usage: max_bytes 0 and 1",
        budgets
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map(|_| "answered at once".into()),
    );
}

/// The query a plugin's own tests ask `usage` with: session `app-1` of project `app` on branch
/// `session/app-1`, its workspace at `workspace_path`, reading `conversation_id`'s records on
/// from `cursor`.
pub fn usage_query(
    workspace_path: &str,
    conversation_id: Option<&str>,
    cursor: &str,
    max_bytes: u64,
) -> UsageQuery {
    UsageQuery {
        session: AgentSession {
            session_id: "app-1".into(),
            project_id: "app".into(),
            branch: "session/app-1".into(),
            workspace_path: workspace_path.into(),
            system_prompt: None.into(),
            agent_config: RString::new(),
        },
        conversation_id: conversation_id.map(RString::from).into(),
        cursor: cursor.into(),
        max_bytes,
    }
}

/// Checks an agent plugin's `usage` on records made for the test (files recorded from the real
/// CLI, put where the plugin looks for `query`'s session): read whole from no cursor, the report
/// is exactly `expected` (every model and hour, every count) with nothing left pending; read
/// again from its own cursor, or from a garbage one, it is the same (nothing counted twice); and
/// read a byte at a time (`max_bytes: 1`, calls until nothing is pending) it never counts more
/// than `expected` on the way and ends exactly at it. Returns the whole report (its notes, say),
/// or what differed.
///
/// ```no_run
/// # use ao_plugin_api::{usage::{ModelUsage, UsageQuery}, Agent};
/// # fn t(plugin: &impl Agent, query: UsageQuery) {
/// let expected = [ModelUsage { model: "m".into(), hour: 1_796_680_800, replies: 2,
///     input: 100, output: 20, ..ModelUsage::default() }];
/// ao_plugin_test::check_usage_records(plugin, &query, &expected).unwrap();
/// # }
/// ```
pub fn check_usage_records(
    agent: &impl Agent,
    query: &UsageQuery,
    expected: &[ModelUsage],
) -> Result<UsageReport, String> {
    let ask = |cursor: &str, max_bytes: u64| {
        let query = UsageQuery {
            cursor: cursor.into(),
            max_bytes,
            ..query.clone()
        };
        agent
            .usage(&query)
            .map_err(|e| format!("usage (cursor {cursor:?}, max_bytes {max_bytes}) failed: {e}"))
    };
    let exactly = |what: &str, report: &UsageReport| -> Result<(), String> {
        if report.usage.as_slice() != expected {
            return Err(format!(
                "{what}: counted\n{:#?}\nexpected\n{expected:#?}",
                report.usage
            ));
        }
        if report.pending_bytes != 0 {
            return Err(format!(
                "{what}: {} bytes still pending with no limit",
                report.pending_bytes
            ));
        }
        Ok(())
    };
    let whole = ask("", u64::MAX)?;
    exactly("read whole", &whole)?;
    exactly(
        "read on from its own cursor",
        &ask(&whole.cursor, u64::MAX)?,
    )?;
    exactly(
        "read from a garbage cursor",
        &ask(GARBAGE_CURSOR, u64::MAX)?,
    )?;

    let mut cursor = RString::new();
    for call in 1..=100_000 {
        let step = ask(&cursor, 1)?;
        if let Some(over) = step.usage.iter().find(|counted| {
            !expected.iter().any(|whole| {
                whole.model == counted.model && whole.hour == counted.hour && within(counted, whole)
            })
        }) {
            return Err(format!(
                "read a byte at a time, call {call} counted more than the records hold: {over:#?}"
            ));
        }
        cursor = step.cursor.clone();
        if step.pending_bytes == 0 {
            exactly("read a byte at a time", &step)?;
            return Ok(whole);
        }
    }
    Err("read a byte at a time, still pending after 100000 calls".into())
}

/// Whether every count of `part` is at most `whole`'s.
fn within(part: &ModelUsage, whole: &ModelUsage) -> bool {
    [
        (part.replies, whole.replies),
        (part.input, whole.input),
        (part.cache_read, whole.cache_read),
        (part.cache_write_5m, whole.cache_write_5m),
        (part.cache_write_1h, whole.cache_write_1h),
        (part.output, whole.output),
        (part.reasoning, whole.reasoning),
    ]
    .iter()
    .all(|(part, whole)| part <= whole)
}
