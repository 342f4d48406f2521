//! The cog kinds of `tourbillon-cogs`, registered by name: what
//! [`Registry::standard`] holds. The processing cogs that keep a meter put
//! it on one [`Board`] that the `stats` kind reads.

#[cfg(feature = "nats")]
pub mod jetstream;
pub mod program;

use step::stats::{Stats, StatsSettings};
use supply::tail::{Tail, TailSettings};
use tourbillon::{Event, Role};
use tourbillon_cogs::meter::{Board, Metered};
use tourbillon_cogs::program::Functions;
use tourbillon_cogs::{drain, step, supply, Error};

use crate::registry::{by_building, BuildEnv, Registry};

impl Registry {
    /// Every cog kind of `tourbillon-cogs`.
    pub fn standard() -> Registry {
        let mut r = Registry::empty();
        let board = r.board().clone();
        r.add(
            "stdin",
            "supply: lines from standard input, until its end",
            Role::Supply,
            by_building(supply::stdin::StdinSupply::new),
            metered(&board, "stdin", |s, _| supply::stdin::StdinSupply::new(s)),
        );
        r.add(
            "tail",
            "supply: follow files and globs through rotation, with checkpoints",
            Role::Supply,
            check_tail,
            metered(&board, "tail", |s, _| Tail::new(s)),
        );
        r.add(
            "tick",
            "supply: an event of fixed fields every interval (or `count` of them)",
            Role::Supply,
            by_building(supply::tick::Tick::new),
            metered(&board, "tick", |s, _| supply::tick::Tick::new(s)),
        );
        r.add(
            "listen",
            "supply: frames from TCP or Unix-socket clients, or UDP datagrams",
            Role::Supply,
            by_building(supply::listen::NetSupply::new),
            metered(&board, "listen", |s, _| supply::listen::NetSupply::new(s)),
        );
        r.add(
            "connect",
            "drain: frames to a TCP or Unix-socket peer, reconnecting",
            Role::Drain,
            by_building(drain::connect::NetDrain::new),
            metered(&board, "connect", |s, _| drain::connect::NetDrain::new(s)),
        );
        r.add(
            "reverse_dns",
            "add the host name of an address field (worker threads, cache, never blocks)",
            Role::Step,
            by_building(step::rdns::ReverseDns::<Event>::new),
            |s, _| step::rdns::ReverseDns::new(s),
        );
        #[cfg(feature = "nats")]
        jetstream::register(&mut r);
        r.add(
            "lines",
            "split byte chunks into lines",
            Role::Step,
            by_building(step::lines::Lines::new),
            metered(&board, "lines", |s, _| step::lines::Lines::new(s)),
        );
        r.add(
            "json_decode",
            "parse JSON text into the event's data",
            Role::Step,
            by_building(step::json::JsonDecode::new),
            metered(&board, "json_decode", |s, _| step::json::JsonDecode::new(s)),
        );
        r.add(
            "multiline",
            "join the lines of a stack trace or a continued message into one event",
            Role::Step,
            by_building(step::multiline::Multiline::new),
            metered(&board, "multiline", |s, _| step::multiline::Multiline::new(s)),
        );
        r.add(
            "parse",
            "read fields out of text: regex, nginx/apache access logs, syslog, logfmt, kv, csv",
            Role::Step,
            by_building(step::parse::Parse::new),
            metered(&board, "parse", |s, _| step::parse::Parse::new(s)),
        );
        r.add(
            "json_encode",
            "render the event's data as JSON text",
            Role::Step,
            by_building(step::json::JsonEncode::new),
            metered(&board, "json_encode", |s, _| step::json::JsonEncode::new(s)),
        );
        r.add(
            "set",
            "write fixed values, the host name, the receive time into fields",
            Role::Step,
            by_building(step::fields::SetFields::<Event>::new),
            metered(&board, "set", |s, _| {
                step::fields::SetFields::new(s).map(|c| c.place(Event::place))
            }),
        );
        r.add(
            "rename",
            "move fields to new paths",
            Role::Step,
            by_building(step::fields::Rename::new),
            metered(&board, "rename", |s, _| step::fields::Rename::new(s)),
        );
        r.add(
            "remove",
            "remove fields",
            Role::Step,
            by_building(step::fields::Remove::new),
            metered(&board, "remove", |s, _| step::fields::Remove::new(s)),
        );
        r.add(
            "filter",
            "keep or drop by field conditions",
            Role::Step,
            by_building(step::filter::Filter::new),
            metered(&board, "filter", |s, _| step::filter::Filter::new(s)),
        );
        r.add(
            "route",
            "send to named outputs (TRAIN.NAME) by field conditions, the rest on down the train",
            Role::Step,
            by_building(step::route::Route::new),
            metered(&board, "route", |s, _| step::route::Route::new(s)),
        );
        r.add(
            "timestamp",
            "parse a time in a field into RFC 3339 or epoch",
            Role::Step,
            by_building(step::timestamp::Timestamp::new),
            metered(&board, "timestamp", |s, _| step::timestamp::Timestamp::new(s)),
        );
        r.add(
            "anonymize",
            "truncate or pseudonymize IP addresses",
            Role::Step,
            by_building(step::anonymize::Anonymize::new),
            metered(&board, "anonymize", |s, _| step::anonymize::Anonymize::new(s)),
        );
        r.add(
            "dedup",
            "drop repeats of a key within a time window",
            Role::Step,
            by_building(step::window::Dedup::new),
            metered(&board, "dedup", |s, _| step::window::Dedup::new(s)),
        );
        r.add(
            "aggregate",
            "count and sum by key per time window",
            Role::Step,
            by_building(step::window::Aggregate::new),
            metered(&board, "aggregate", |s, _| step::window::Aggregate::new(s)),
        );
        r.add(
            "rate_limit",
            "at most a rate of data per key (token bucket)",
            Role::Step,
            by_building(step::ratelimit::RateLimit::new),
            metered(&board, "rate_limit", |s, _| step::ratelimit::RateLimit::new(s)),
        );
        r.add(
            "pace",
            "let data through no faster than one per interval, in order, holding the others",
            Role::Step,
            by_building(step::pace::Pace::new),
            metered(&board, "pace", |s, _| step::pace::Pace::new(s)),
        );
        r.add(
            "increment",
            "add to the integer in a field (a missing one counts as `start`)",
            Role::Step,
            by_building(step::increment::Increment::new),
            metered(&board, "increment", |s, _| step::increment::Increment::new(s)),
        );
        r.add(
            "sample",
            "keep one in N, or with a probability",
            Role::Step,
            by_building(step::sample::Sample::new),
            metered(&board, "sample", |s, _| step::sample::Sample::new(s)),
        );
        r.add(
            "stats",
            "log per-cog counters every interval, on SIGUSR1, at the end",
            Role::Step,
            by_building(Stats::new),
            stats(&board),
        );
        r.add(
            "file",
            "drain: append lines to a file (reopened on SIGHUP)",
            Role::Drain,
            by_building(drain::file::FileDrain::new),
            metered(&board, "file", |s, _| drain::file::FileDrain::new(s)),
        );
        r.add(
            "stdout",
            "drain: write lines to standard output",
            Role::Drain,
            by_building(drain::stdout::StdoutDrain::new),
            metered(&board, "stdout", |s, _| drain::stdout::StdoutDrain::new(s)),
        );
        program::register(&mut r, Functions::standard());
        r
    }
}

/// The tail's check: its constructor opens the checkpoint store, so it is
/// built without one (it then opens nothing: files are found when it
/// starts) after the settings' own check of `checkpoint_dir`.
fn check_tail(settings: &TailSettings, _: &BuildEnv) -> Result<(), Error> {
    settings.validate()?;
    Tail::new(TailSettings {
        checkpoint_dir: None,
        ..settings.clone()
    })
    .map(drop)
}

/// Wraps a registry constructor so that the cogs it builds put their meter
/// on `board`, under their train and position:
/// `r.add("filter", "...", check, metered(&board, "filter", |s, _| Filter::new(s)))`.
pub fn metered<S, C, F>(board: &Board, kind: &'static str, build: F) -> impl Fn(S, &BuildEnv) -> Result<C, Error>
where
    C: Metered,
    F: Fn(S, &BuildEnv) -> Result<C, Error>,
{
    let board = board.clone();
    move |settings, env| {
        let cog = build(settings, env)?;
        board.put_probed(&env.train, env.index, kind, cog.meter(), cog.probe());
        Ok(cog)
    }
}

/// The constructor of the `stats` kind: a [`Stats`] cog reading `board`,
/// and on it as a probe.
pub fn stats(board: &Board) -> impl Fn(StatsSettings, &BuildEnv) -> Result<Stats, Error> {
    let board = board.clone();
    move |settings, env| {
        let stats = Stats::new(settings)?.board(board.clone(), &env.train);
        board.put(&env.train, env.index, "stats", stats.meter());
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use crate::app::load_and_plan;
    use crate::config::{ConfigError, Sources};
    use crate::registry::Registry;

    /// The errors `check` finds in one train `t` of `stdin`, `middle`, `stdout`.
    fn errors(middle: &str) -> Vec<ConfigError> {
        let sources = Sources {
            embedded: Some(format!(
                "[trains.t]\ncogs = [{{ kind = \"stdin\" }}, {middle}, {{ kind = \"stdout\" }}]\n"
            )),
            ..Sources::default()
        };
        match load_and_plan(&sources, &Registry::standard()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        }
    }

    fn one(middle: &str) -> (String, String) {
        let errors = errors(middle);
        assert_eq!(errors.len(), 1, "{errors:?}");
        (errors[0].path.clone(), errors[0].message.clone())
    }

    #[test]
    fn bad_route_settings_are_named_by_key_path() {
        let (path, message) = one(
            r#"{ kind = "route", outputs = { errors = [{ field = "level", equals = "error" }, { field = "" , exists = true }] } }"#,
        );
        assert_eq!(path, "trains.t.cogs[1].outputs.errors[1].field");
        assert!(message.contains("does not name a field"), "{message}");
        let (path, message) = one(r#"{ kind = "route", outputs = { errors = [{ field = "level", regex = "(" }] } }"#);
        assert_eq!(path, "trains.t.cogs[1].outputs.errors[0].regex");
        assert!(message.contains("regex parse error"), "{message}");
        let (path, message) = one(r#"{ kind = "route", outputs = {} }"#);
        assert_eq!(path, "trains.t.cogs[1].outputs");
        assert!(message.starts_with("required: at least one output"), "{message}");
        let (path, message) = one(r#"{ kind = "route", outputs = { "a.b" = [{ field = "x", exists = true }] } }"#);
        assert_eq!(path, "trains.t.cogs[1].outputs");
        assert!(message.contains("`a.b` is not an output name"), "{message}");
        let (path, _) = one(r#"{ kind = "route", mode = "some", outputs = { e = [{ field = "x", exists = true }] } }"#);
        assert_eq!(path, "trains.t.cogs[1].mode");
        let (path, _) = one(r#"{ kind = "route", outputs = { e = [{ field = "x", exist = true }] } }"#);
        assert_eq!(path, "trains.t.cogs[1].outputs.e[0].exist");
        assert!(
            errors(r#"{ kind = "route", mode = "all", outputs = { e = [{ field = "x", exists = true }] } }"#)
                .is_empty()
        );
    }

    #[test]
    fn json_decode_error_output_is_checked_with_on_error() {
        let (path, message) = one(r#"{ kind = "json_decode", error_output = "bad", on_error = "wrap" }"#);
        assert_eq!(path, "trains.t.cogs[1].error_output");
        assert!(
            message.contains("on_error = \"wrap\"") && message.contains("set one of error_output and on_error"),
            "{message}"
        );
        let (path, _) = one(r#"{ kind = "json_decode", error_output = "" }"#);
        assert_eq!(path, "trains.t.cogs[1].error_output");
        assert!(errors(r#"{ kind = "json_decode", error_output = "bad" }"#).is_empty());
        let (path, message) = one(r#"{ kind = "timestamp", error_output = "late", on_invalid = "drop" }"#);
        assert_eq!(path, "trains.t.cogs[1].error_output");
        assert!(message.contains("set one of error_output and on_invalid"), "{message}");
        let (path, _) = one(r#"{ kind = "timestamp", error_field = "why" }"#);
        assert_eq!(path, "trains.t.cogs[1].error_field");
        assert!(errors(r#"{ kind = "timestamp", error_output = "late", error_field = "why" }"#).is_empty());
    }

    #[test]
    fn bad_parse_settings_are_named_by_key_path() {
        let (path, message) = one(r#"{ kind = "parse", format = "regex", pattern = "(?P<a>" }"#);
        assert_eq!(path, "trains.t.cogs[1].pattern");
        assert!(message.contains("regex parse error"), "{message}");
        let (path, message) = one(r#"{ kind = "parse", format = "regex", pattern = "(a)" }"#);
        assert_eq!(path, "trains.t.cogs[1].pattern");
        assert!(message.starts_with("has no named group"), "{message}");
        let (path, message) = one(r#"{ kind = "parse", format = "nginx" }"#);
        assert_eq!(path, "trains.t.cogs[1].format");
        assert!(
            message.starts_with("unknown format `nginx`: one of regex, nginx_combined"),
            "{message}"
        );
        let (path, message) = one(r#"{ kind = "parse", format = "logfmt", types = { ok = "boolean" } }"#);
        assert_eq!(path, "trains.t.cogs[1].types.ok");
        assert!(message.starts_with("unknown type `boolean`"), "{message}");
        let (path, _) = one(r#"{ kind = "parse", format = "csv", columns = ["a", ""] }"#);
        assert_eq!(path, "trains.t.cogs[1].columns[1]");
        let (path, _) = one(r#"{ kind = "parse", format = "logfmt", error_output = "bad", on_error = "drop" }"#);
        assert_eq!(path, "trains.t.cogs[1].error_output");
        assert!(errors(r#"{ kind = "parse", format = "nginx_combined", types = { size = "string" } }"#).is_empty());
    }
}
