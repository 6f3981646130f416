//! What an agent plugin needs to answer [`Agent::usage`](ao_plugin_api::Agent::usage): a
//! [`UsageTally`] that sums replies per model and UTC hour, and a [`RecordFile`] position that
//! reads the lines appended to a record file since the last call. Both are serde values, so a
//! plugin keeps them in the cursor it hands the host (`serde_json::to_string` of its own struct
//! holding them) and reads on from there next time.
//!
//! A plugin whose records name each reply (an id repeated when the record repeats the reply)
//! counts it with [`RepliesById`]; one whose conversation may span several files (a resumed
//! conversation, a copy) reads them all on with [`RecordFiles`]. [`read_conversation`] does the
//! whole of an answer for records that are JSON lines: the plugin says what a line counts.

use std::{
    collections::BTreeMap,
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use ao_plugin_api::{
    abi_stable::std_types::RVec,
    usage::{ModelUsage, UsageReport},
    ErrorKind, PluginFailure,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The tokens of one model reply (or of several, summed), split the way they are priced (see
/// [`ModelUsage`] for what each field holds).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input not read from a cache.
    pub input: u64,
    /// Input read from a cache.
    pub cache_read: u64,
    /// Input written to a cache kept about 5 minutes.
    pub cache_write_5m: u64,
    /// Input written to a cache kept about an hour.
    pub cache_write_1h: u64,
    /// Output, reasoning excluded.
    pub output: u64,
    /// Reasoning counted apart from output.
    pub reasoning: u64,
}

impl Tokens {
    fn add(&mut self, other: &Tokens) {
        self.input = self.input.saturating_add(other.input);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_write_5m = self.cache_write_5m.saturating_add(other.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_add(other.cache_write_1h);
        self.output = self.output.saturating_add(other.output);
        self.reasoning = self.reasoning.saturating_add(other.reasoning);
    }

    fn subtract(&mut self, other: &Tokens) {
        self.input = self.input.saturating_sub(other.input);
        self.cache_read = self.cache_read.saturating_sub(other.cache_read);
        self.cache_write_5m = self.cache_write_5m.saturating_sub(other.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_sub(other.cache_write_1h);
        self.output = self.output.saturating_sub(other.output);
        self.reasoning = self.reasoning.saturating_sub(other.reasoning);
    }
}

/// Replies and their tokens.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    replies: u64,
    tokens: Tokens,
}

/// A session's usage so far, per model and UTC hour.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageTally {
    /// Model → start of the hour (seconds since the epoch) → what was counted.
    models: BTreeMap<String, BTreeMap<u64, Bucket>>,
}

impl UsageTally {
    /// Counts one reply of `model` made at `at` (seconds since the epoch; `None`: now).
    pub fn add_reply(&mut self, model: &str, at: Option<u64>, tokens: &Tokens) {
        let bucket = self.bucket(model, at);
        bucket.replies = bucket.replies.saturating_add(1);
        bucket.tokens.add(tokens);
    }

    /// Replaces the tokens a reply counted earlier with `add_reply(model, at, counted)` by
    /// `now`, without counting another reply: for a record that repeats a reply with figures
    /// that grew as it streamed.
    pub fn revise_reply(&mut self, model: &str, at: Option<u64>, counted: &Tokens, now: &Tokens) {
        let bucket = self.bucket(model, at);
        bucket.tokens.subtract(counted);
        bucket.tokens.add(now);
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The tally as the report's `usage`: one entry per model and hour, in that order.
    pub fn to_usage(&self) -> RVec<ModelUsage> {
        self.models
            .iter()
            .flat_map(|(model, hours)| {
                hours.iter().map(move |(hour, bucket)| ModelUsage {
                    model: model.as_str().into(),
                    hour: *hour,
                    replies: bucket.replies,
                    input: bucket.tokens.input,
                    cache_read: bucket.tokens.cache_read,
                    cache_write_5m: bucket.tokens.cache_write_5m,
                    cache_write_1h: bucket.tokens.cache_write_1h,
                    output: bucket.tokens.output,
                    reasoning: bucket.tokens.reasoning,
                })
            })
            .collect()
    }

    fn bucket(&mut self, model: &str, at: Option<u64>) -> &mut Bucket {
        let hour = hour_of(at.unwrap_or_else(now_secs));
        self.models
            .entry(model.to_string())
            .or_default()
            .entry(hour)
            .or_default()
    }
}

/// Replies counted once each by the id their record gives them, with the figures of the last
/// record of the reply: a record that repeats a reply (updated as it streamed, or copied into a
/// resumed conversation's file) never counts it twice.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct RepliesById {
    tally: UsageTally,
    /// Reply id → what it was counted as.
    counted: BTreeMap<String, CountedReply>,
}

/// What one reply was counted as, to revise it when its record repeats it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct CountedReply {
    model: String,
    at: u64,
    tokens: Tokens,
}

impl RepliesById {
    /// Counts reply `id` of `model` made at `at` (`None`: now); a reply counted before keeps its
    /// model and hour and has its tokens replaced by these.
    pub fn count(&mut self, id: &str, model: &str, at: Option<u64>, tokens: &Tokens) {
        match self.counted.get_mut(id) {
            Some(counted) => {
                self.tally
                    .revise_reply(&counted.model, Some(counted.at), &counted.tokens, tokens);
                counted.tokens = *tokens;
            }
            None => {
                let at = at.unwrap_or_else(now_secs);
                self.tally.add_reply(model, Some(at), tokens);
                let reply = CountedReply {
                    model: model.to_string(),
                    at,
                    tokens: *tokens,
                };
                self.counted.insert(id.to_string(), reply);
            }
        }
    }

    /// Whether no reply was counted.
    pub fn is_empty(&self) -> bool {
        self.counted.is_empty()
    }

    /// The replies as the report's `usage` (see [`UsageTally::to_usage`]).
    pub fn to_usage(&self) -> RVec<ModelUsage> {
        self.tally.to_usage()
    }
}

/// The start of the UTC hour holding `secs` (seconds since the epoch).
pub fn hour_of(secs: u64) -> u64 {
    secs - secs % 3600
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch of an RFC 3339 time as agent CLIs write them
/// (`2026-12-07T22:31:42.123Z`, `2026-12-07T23:31:42+01:00`); `None` for anything else.
pub fn rfc3339_secs(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let number = |from: usize, len: usize| -> Option<i64> {
        let digits = text.get(from..from + len)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = (number(text.len() - 5, 2)?, number(text.len() - 2, 2)?);
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(60) - offset;
    u64::try_from(secs).ok()
}

/// Refuses a record that is not a regular file of this user, or that others may write: what
/// another user could plant or change is never counted. `meta` is the file's own (from the
/// opened file, or `symlink_metadata` where the reader opens it by path itself).
pub fn check_own_record(path: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    if !meta.file_type().is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.mode() & 0o002 != 0 {
        return Err(io::Error::other(format!(
            "{} is not this user's own file (or others may write it), so it is not counted",
            path.display()
        )));
    }
    Ok(())
}

/// How far one append-only record file (a JSON-lines transcript) has been read.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFile {
    /// Bytes read so far: always the end of a whole line.
    offset: u64,
    /// The file's inode when it was last read, to tell a file replaced since.
    inode: u64,
    /// Its first bytes (up to [`HEAD_BYTES`], hex), to tell a file replaced since under an
    /// inode number the filesystem gave again, or written over in place.
    #[serde(default)]
    head: String,
}

/// How many of a record file's first bytes [`RecordFile`] keeps to know the file again.
const HEAD_BYTES: u64 = 64;

/// What [`RecordFile::read_on`] found.
#[derive(Debug, Default)]
pub struct AppendedLines {
    /// The whole lines appended since the last read, without their newlines. A last line
    /// still being written (no newline yet) is left for the next read.
    pub lines: Vec<String>,
    /// Bytes there but left unread, as the budget ran out.
    pub pending_bytes: u64,
    /// The file was replaced or cut short since the last read, so `lines` start again at its
    /// beginning: whatever was counted from it before must be counted again.
    pub restarted: bool,
    /// Whole lines passed over as longer than [`LONGEST_LINE`]: no record is that long, and
    /// holding one in memory would cost more than a listing may.
    pub too_long: u64,
}

/// The longest line [`RecordFile::read_on`] hands over (64 MiB).
pub const LONGEST_LINE: u64 = 64 << 20;

impl RecordFile {
    /// Reads the lines appended to `path` since the last call, taking at most about `budget`
    /// bytes (less what it took: a line is never cut, so one longer than the budget is read
    /// whole when it comes first). The file must be a regular file of this user, reached
    /// without following a link at its last component: a record another user could write is
    /// not counted.
    pub fn read_on(&mut self, path: &Path, budget: &mut u64) -> io::Result<AppendedLines> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        let meta = file.metadata()?;
        check_own_record(path, &meta)?;
        let mut appended = AppendedLines::default();
        let head_len = (self.head.len() as u64 / 2).min(meta.len());
        if meta.ino() != self.inode
            || meta.len() < self.offset
            || head_of(&file, head_len)? != self.head
        {
            appended.restarted = self.offset > 0 || self.inode != 0;
            *self = RecordFile {
                offset: 0,
                inode: meta.ino(),
                head: String::new(),
            };
        }
        let mut reader = BufReader::new(file);
        reader.seek(SeekFrom::Start(self.offset))?;
        let mut line = Vec::new();
        while self.offset < meta.len() {
            if *budget == 0 {
                appended.pending_bytes = meta.len() - self.offset;
                break;
            }
            line.clear();
            let read = (&mut reader)
                .take(LONGEST_LINE + 1)
                .read_until(b'\n', &mut line)? as u64;
            if read > LONGEST_LINE && line.last() != Some(&b'\n') {
                let Some(rest) = pass_line(&mut reader)? else {
                    break;
                };
                self.offset += read + rest;
                *budget = budget.saturating_sub(read + rest);
                appended.too_long += 1;
                continue;
            }
            if read == 0 || line.last() != Some(&b'\n') {
                break;
            }
            self.offset += read;
            *budget = budget.saturating_sub(read);
            line.pop();
            appended
                .lines
                .push(String::from_utf8_lossy(&line).into_owned());
        }
        if (self.head.len() as u64) < 2 * HEAD_BYTES.min(self.offset) {
            self.head = head_of(reader.get_ref(), HEAD_BYTES.min(self.offset))?;
        }
        Ok(appended)
    }
}

/// The first `len` bytes of `file`, hex.
fn head_of(file: &std::fs::File, len: u64) -> io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// How far each file of one conversation's records has been read.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFiles {
    files: BTreeMap<PathBuf, RecordFile>,
}

/// What [`RecordFiles::read_on`] found in all the files.
#[derive(Debug, Default)]
pub struct ReadOn {
    /// The whole lines appended to the files since the last read, file by file.
    pub lines: Vec<String>,
    /// Bytes there but left unread, as the budget ran out.
    pub pending_bytes: u64,
    /// A file was replaced or cut short: what was counted before must be counted again, from
    /// a fresh [`RecordFiles`].
    pub restarted: bool,
    /// Files that could not be read, and why, for the report's notes.
    pub unreadable: Vec<String>,
    /// Lines passed over as longer than any record ([`LONGEST_LINE`]).
    pub too_long: u64,
}

impl RecordFiles {
    /// Reads on in each of `paths` (in that order) within `budget` bytes, as
    /// [`RecordFile::read_on`] does. A file that cannot be read is named in
    /// [`ReadOn::unreadable`] and the others are read all the same; a file read before that is
    /// no longer among `paths` keeps what was counted from it.
    pub fn read_on(&mut self, paths: &[PathBuf], budget: &mut u64) -> ReadOn {
        let mut read = ReadOn::default();
        for path in paths {
            let position = self.files.entry(path.clone()).or_default();
            match position.read_on(path, budget) {
                Ok(appended) => {
                    read.lines.extend(appended.lines);
                    read.pending_bytes += appended.pending_bytes;
                    read.restarted |= appended.restarted;
                    read.too_long += appended.too_long;
                }
                Err(e) => read
                    .unreadable
                    .push(format!("{} could not be read: {e}", path.display())),
            }
        }
        read
    }
}

/// What a plugin counts from the lines of a conversation's records; it is kept in the cursor
/// between calls, so it holds whatever it needs to count each reply once.
pub trait LineCounter: Default + Serialize + DeserializeOwned {
    /// Counts what one whole line of the records says (nothing, for a line about no reply).
    fn count_line(&mut self, line: &str);
    /// Everything counted so far.
    fn to_usage(&self) -> RVec<ModelUsage>;
    /// What could not be counted, for the operator.
    fn notes(&self) -> Vec<String>;
}

/// The cursor of [`read_conversation`]: where each file was read to, and what was counted.
#[derive(Serialize, Deserialize, Default)]
struct ConversationCursor<C> {
    files: RecordFiles,
    counted: C,
}

/// The whole answer to [`Agent::usage`](ao_plugin_api::Agent::usage) for a conversation kept
/// in the JSON-lines files `paths` (all of them the conversation's own): reads on from `cursor`
/// (a cursor this returned before; anything else counts from the start) within about
/// `max_bytes`, and counts again from the start when a file was replaced or cut short. Fails
/// with `NotFound` when `paths` is empty and with `Failed` when none of them can be read and
/// nothing was counted before.
pub fn read_conversation<C: LineCounter>(
    cursor: &str,
    paths: &[PathBuf],
    max_bytes: u64,
) -> Result<UsageReport, PluginFailure> {
    if paths.is_empty() {
        return Err(PluginFailure::new(
            ErrorKind::NotFound,
            "the conversation has no records yet",
        ));
    }
    let mut state: ConversationCursor<C> = serde_json::from_str(cursor).unwrap_or_default();
    let mut budget = max_bytes;
    let mut read = state.files.read_on(paths, &mut budget);
    if read.restarted {
        state = ConversationCursor::default();
        budget = max_bytes;
        read = state.files.read_on(paths, &mut budget);
    }
    let usage_before = state.counted.to_usage();
    if read.unreadable.len() == paths.len() && usage_before.is_empty() {
        return Err(PluginFailure::new(
            ErrorKind::Failed,
            read.unreadable.join("; "),
        ));
    }
    for line in &read.lines {
        state.counted.count_line(line);
    }
    let mut notes = read.unreadable;
    if read.too_long > 0 {
        notes.push(format!(
            "{} line(s) longer than any record were passed over, not counted",
            read.too_long
        ));
    }
    notes.extend(state.counted.notes());
    Ok(UsageReport {
        usage: state.counted.to_usage(),
        cursor: serde_json::to_string(&state).unwrap_or_default().into(),
        pending_bytes: read.pending_bytes,
        notes: notes.into_iter().map(Into::into).collect(),
    })
}

/// Reads on past the end of the current line without keeping it: the bytes up to and with its
/// newline, or `None` when the file ends first (the line is still being written).
fn pass_line(reader: &mut impl BufRead) -> io::Result<Option<u64>> {
    let mut passed = 0u64;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(None);
        }
        if let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            reader.consume(end + 1);
            return Ok(Some(passed + end as u64 + 1));
        }
        let len = buffer.len();
        reader.consume(len);
        passed += len as u64;
    }
}

#[cfg(test)]
mod tests {
    use std::{fs::File, io::Write};

    use super::*;

    #[test]
    fn rfc3339_times_are_read_in_utc() {
        assert_eq!(rfc3339_secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_secs("2026-12-07T22:31:42.123Z"),
            Some(1_796_682_702)
        );
        assert_eq!(
            rfc3339_secs("2026-12-07T23:31:42+01:00"),
            Some(1_796_682_702)
        );
        assert_eq!(rfc3339_secs("2000-02-29T12:00:00Z"), Some(951_825_600));
        for bad in [
            "",
            "yesterday",
            "2026-13-07T22:31:42Z",
            "2026-12-07T22:31:42",
        ] {
            assert_eq!(rfc3339_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_revised_reply_replaces_its_tokens_and_stays_one_reply() {
        let mut tally = UsageTally::default();
        let first = Tokens {
            input: 10,
            output: 1,
            ..Tokens::default()
        };
        let last = Tokens {
            input: 10,
            output: 40,
            ..Tokens::default()
        };
        tally.add_reply("m", Some(7200), &first);
        tally.revise_reply("m", Some(7200), &first, &last);
        tally.add_reply("m", Some(3 * 3600 + 5), &first);
        let usage = tally.to_usage();
        assert_eq!(usage.len(), 2);
        assert_eq!(
            (usage[0].hour, usage[0].replies, usage[0].output),
            (7200, 1, 40)
        );
        assert_eq!(
            (usage[1].hour, usage[1].replies, usage[1].output),
            (10800, 1, 1)
        );
    }

    #[test]
    fn lines_are_read_on_whole_within_the_budget_and_again_after_a_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"one\ntwo\nthr").unwrap();
        let mut record = RecordFile::default();
        let mut budget = 4;
        let read = record.read_on(&path, &mut budget).unwrap();
        assert_eq!(read.lines, ["one"]);
        assert_eq!(read.pending_bytes, 7);
        let mut budget = 100;
        let read = record.read_on(&path, &mut budget).unwrap();
        assert_eq!(read.lines, ["two"], "a line without its newline waits");
        file.write_all(b"ee\n").unwrap();
        let read = record.read_on(&path, &mut budget).unwrap();
        assert_eq!(
            (read.lines.as_slice(), read.restarted),
            (&["three".to_string()][..], false)
        );

        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "new\n").unwrap();
        let read = record.read_on(&path, &mut budget).unwrap();
        assert_eq!(
            (read.lines.as_slice(), read.restarted),
            (&["new".to_string()][..], true)
        );
    }

    #[test]
    fn a_line_longer_than_any_record_is_passed_over_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut file = File::create(&path).unwrap();
        let huge = vec![b'x'; LONGEST_LINE as usize + 10];
        file.write_all(b"one\n").unwrap();
        file.write_all(&huge).unwrap();
        let mut record = RecordFile::default();
        let read = record.read_on(&path, &mut u64::MAX.clone()).unwrap();
        assert_eq!(
            (read.lines.as_slice(), read.too_long),
            (&["one".to_string()][..], 0)
        );
        file.write_all(b"\ntwo\n").unwrap();
        let read = record.read_on(&path, &mut u64::MAX.clone()).unwrap();
        assert_eq!(
            (read.lines.as_slice(), read.too_long),
            (&["two".to_string()][..], 1)
        );
    }

    #[test]
    fn a_file_written_over_in_place_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, "aaa\nbbb\n").unwrap();
        let mut record = RecordFile::default();
        assert_eq!(
            record.read_on(&path, &mut 100).unwrap().lines,
            ["aaa", "bbb"]
        );
        // Same inode, longer than what was read, other first bytes.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, b"zzz\nbbb\nccc\n", 0).unwrap();
        let read = record.read_on(&path, &mut 100).unwrap();
        assert!(read.restarted);
        assert_eq!(read.lines, ["zzz", "bbb", "ccc"]);
    }

    #[test]
    fn a_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), "x\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        let err = RecordFile::default()
            .read_on(&dir.path().join("link"), &mut 100)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn a_reply_repeated_by_id_is_counted_once_with_its_last_figures() {
        let mut replies = RepliesById::default();
        let first = Tokens {
            input: 10,
            output: 1,
            ..Tokens::default()
        };
        let last = Tokens { output: 7, ..first };
        replies.count("a", "m", Some(7200), &first);
        replies.count("a", "m", Some(7300), &last);
        replies.count("b", "m", Some(7400), &first);
        let usage = replies.to_usage();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            (usage[0].replies, usage[0].input, usage[0].output),
            (2, 20, 8)
        );
        let kept: RepliesById =
            serde_yaml::from_str(&serde_yaml::to_string(&replies).unwrap()).unwrap();
        assert_eq!(kept, replies);
    }

    #[test]
    fn every_file_is_read_on_and_one_that_cannot_be_read_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        std::fs::write(&one, "a\nb\n").unwrap();
        let mut files = RecordFiles::default();
        let read = files.read_on(&[one.clone(), two.clone()], &mut 100);
        assert_eq!(read.lines, ["a", "b"]);
        assert_eq!(read.unreadable.len(), 1, "{:?}", read.unreadable);
        std::fs::write(&two, "c\n").unwrap();
        let read = files.read_on(&[one, two], &mut 100);
        assert_eq!((read.lines, read.restarted), (vec!["c".to_string()], false));
    }
}
