//! Program specs: what loads, what is refused, and that every error is
//! listed with its path.

use tourbillon_cogs::program::{Format, Functions, Spec, SpecErrors};

fn toml(text: &str) -> Result<Spec, SpecErrors> {
    Spec::parse(text, Format::Toml, &Functions::standard())
}

fn errors(text: &str, format: Format) -> SpecErrors {
    match Spec::parse(text, format, &Functions::standard()) {
        Ok(_) => panic!("the spec should be refused"),
        Err(e) => e,
    }
}

const GOOD: &str = r#"
name = "bank"
version = 3

[programs.transfer]
hooks = ["credit", "programs.audit"]
lock = "from"
args.from = { type = "string", required = true }
args.amount = { type = "int", required = true }
args.note = { type = "string", default = "" }
outputs.receipt = { type = "string" }

[programs.audit]
outputs = {}
hooks = ["log"]
args.level = { type = "string", default = "info" }
args.receipt = { type = "string", required = true }

[hooks.debit]
reference = "set"
params = { debited = "${amount}" }
outputs = ["debited"]
rectifiers = ["undo"]

[hooks.credit]
reference = "set"
dependencies = ["debit"]
params = { receipt = "${from} paid ${debited}" }
outputs = ["receipt"]

[hooks.undo]
reference = "remove_file"
params = { path = "/nonexistent/${from}" }

[hooks.log]
reference = "append_file"
params = { path = "/dev/null", line = "${level}: ${receipt}" }
"#;

#[test]
fn a_good_spec_loads_with_dependencies_placed_and_nested_programs_inlined() {
    let spec = toml(GOOD).unwrap();
    assert_eq!((spec.name.as_str(), spec.version.as_str()), ("bank", "3"));
    let plan: Vec<(&str, &str)> = spec.programs["transfer"]
        .plan
        .iter()
        .map(|s| (s.hook.as_str(), s.program.as_str()))
        .collect();
    assert_eq!(
        plan,
        [
            ("debit", "transfer"),
            ("credit", "transfer"),
            ("programs.audit", "transfer/audit"),
            ("log", "transfer/audit"),
        ]
    );
}

#[test]
fn the_same_spec_in_json_loads_the_same() {
    let json = r#"{
      "name": "bank", "version": "3",
      "programs": {
        "transfer": {"hooks": ["credit", "programs.audit"], "lock": "from",
          "args": {"from": {"type": "string", "required": true}, "amount": {"type": "int", "required": true},
                   "note": {"type": "string", "default": ""}},
          "outputs": {"receipt": {"type": "string"}}},
        "audit": {"hooks": ["log"], "args": {"level": {"type": "string", "default": "info"},
                                             "receipt": {"type": "string", "required": true}},
                  "outputs": {}}
      },
      "hooks": {
        "debit": {"reference": "set", "params": {"debited": "${amount}"}, "outputs": ["debited"], "rectifiers": ["undo"]},
        "credit": {"reference": "set", "dependencies": ["debit"], "params": {"receipt": "${from} paid ${debited}"},
                   "outputs": ["receipt"]},
        "undo": {"reference": "remove_file", "params": {"path": "/nonexistent/${from}"}},
        "log": {"reference": "append_file", "params": {"path": "/dev/null", "line": "${level}: ${receipt}"}}
      }
    }"#;
    let from_json = Spec::parse(json, Format::Json, &Functions::standard()).unwrap();
    assert_eq!(from_json, toml(GOOD).unwrap());
}

#[test]
fn every_error_is_listed_with_its_path() {
    let e = errors(
        r#"
name = "broken"
colour = "blue"

[programs.p]
hooks = ["a", "nope", "programs.ghost", "a"]
lock = "who"
args.n = { type = "integer" }
args.m = { type = "int", default = "seven" }
args.k = { required = true }
outputs.o = { type = "bool", default = 1 }

[hooks.a]
reference = "teleport"
rectifiers = ["missing"]
dependencies = ["programs.p"]
params = { x = "${unknown_name}" }
retries = -1
"#,
        Format::Toml,
    );
    let expect = [
        ("colour", "unknown key"),
        ("programs.p.hooks[1]", "unknown hook `nope`"),
        ("programs.p.hooks[2]", "unknown program `ghost`"),
        ("programs.p.hooks[3]", "duplicate name `a`"),
        ("programs.p.lock", "`who` is not an argument"),
        ("programs.p.args.n.type", "unknown type `integer`"),
        ("programs.p.args.m.default", "default must be int, not string"),
        ("programs.p.args.k.type", "required"),
        ("programs.p.outputs.o.default", "default must be bool, not int"),
        ("hooks.a.reference", "function `teleport` is not registered"),
        ("hooks.a.rectifiers[0]", "unknown hook `missing`"),
        ("hooks.a.dependencies[0]", "only hooks can be named here"),
        ("hooks.a.params.x", "`${unknown_name}` is neither an argument"),
        ("hooks.a.retries", "whole number"),
    ];
    for (path, needle) in expect {
        assert!(e.has(path, needle), "no `{needle}` at {path} in:\n{e}");
    }
    assert_eq!(e.errors.len(), expect.len(), "{e}");
}

#[test]
fn dependency_and_program_cycles_are_refused_with_the_cycle_spelled_out() {
    let e = errors(
        r#"
name = "loops"
[programs.outer]
outputs = {}
hooks = ["programs.inner"]
[programs.inner]
outputs = {}
hooks = ["x", "programs.outer"]
[hooks.x]
reference = "set"
dependencies = ["y"]
[hooks.y]
reference = "set"
dependencies = ["x"]
"#,
        Format::Toml,
    );
    assert!(e.has("hooks.x.dependencies", "dependency cycle: x -> y -> x"), "{e}");
    assert!(
        e.has("programs.inner.hooks", "program cycle: inner -> outer -> inner"),
        "{e}"
    );
}

#[test]
fn duplicate_names_in_json_are_refused_not_silently_merged() {
    let e = errors(
        r#"{"name": "d", "programs": {"p": {"hooks": ["h"]}, "p": {"hooks": ["h"]}},
            "hooks": {"h": {"reference": "set"}, "h": {"reference": "fail"}}}"#,
        Format::Json,
    );
    assert!(e.has("programs.p", "duplicate name"), "{e}");
    assert!(e.has("hooks.h", "duplicate name"), "{e}");
}

#[test]
fn syntax_errors_and_missing_parts_are_reported() {
    let e = errors("name = \n", Format::Toml);
    assert!(e.errors[0].message.starts_with("not valid TOML"), "{e}");
    let e = errors("{}", Format::Json);
    assert!(e.has("name", "required") && e.has("programs", "required"), "{e}");
    let e = errors(r#"{"name": "x", "programs": {"p": {"hooks": []}}}"#, Format::Json);
    assert!(e.has("programs.p.hooks", "at least one hook"), "{e}");
}

#[test]
fn a_spec_file_is_read_as_json_or_toml_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.toml");
    std::fs::write(&path, GOOD).unwrap();
    assert!(Spec::load(&path, &Functions::standard()).is_ok());
    let missing = dir.path().join("none.json");
    let e = Spec::load(&missing, &Functions::standard()).unwrap_err();
    assert!(
        e.to_string().contains("none.json") && e.to_string().contains("cannot read"),
        "{e}"
    );
}

#[test]
fn inputs_are_checked_against_the_arguments() {
    let spec = toml(GOOD).unwrap();
    let p = &spec.programs["transfer"];
    let pool = p.check_input(&serde_json::json!({"from": "ann", "amount": 5})).unwrap();
    assert_eq!(pool["note"], "", "the default is filled in");
    let errs = p
        .check_input(&serde_json::json!({"amount": "5", "extra": 1}))
        .unwrap_err();
    assert_eq!(
        errs,
        [
            "unknown argument `extra`",
            "argument `amount` must be int, not string",
            "missing required argument `from` (string)"
        ]
    );
}

/// A spec written as ryuso's table documents it: `hooks.NAME` and
/// `programs.NAME` references, hook `args` as requirements on the pool.
const RYUSO: &str = r#"
version = "1.2.3"
name = "My transaction_processing-2"

[programs.make_deposit]
description = "credit an account"
hooks = ["hooks.credit"]
args.amount = { type = "int", required = true, description = "how much" }
outputs.credited = { type = "int", required = true, description = "what was credited" }

[programs.pay]
hooks = ["hooks.check_balance", "programs.make_deposit", "check_balance_again"]
args.amount = { type = "int", required = true }
args.balance = { type = "float", required = true }
outputs = {}

[hooks.check_balance]
reference = "set"
description = "checks the balance"
args.balance = { type = "float", required = true, description = "the payer's balance" }
dependencies = ["hooks.has_balance"]
rectifiers = ["hooks.undo", "undo_more"]

[hooks.check_balance_again]
reference = "set"

[hooks.has_balance]
reference = "set"

[hooks.undo]
reference = "set"

[hooks.undo_more]
reference = "set"

[hooks.credit]
reference = "set"
args.amount = { type = "int", required = true }
params = { credited = "${amount}", by = "${metadata.user}" }
outputs = ["credited"]
"#;

#[test]
fn ryuso_references_and_hook_args_are_accepted_and_resolved_to_the_same_hooks() {
    let spec = toml(RYUSO).unwrap();
    assert_eq!(spec.name, "My transaction_processing-2");
    assert_eq!(spec.version, "1.2.3");
    let plan: Vec<&str> = spec.programs["pay"].plan.iter().map(|s| s.hook.as_str()).collect();
    assert_eq!(
        plan,
        [
            "has_balance",
            "check_balance",
            "programs.make_deposit",
            "credit",
            "check_balance_again"
        ]
    );
    let check = &spec.hooks["check_balance"];
    assert_eq!(check.rectifiers, ["undo", "undo_more"]);
    assert_eq!(check.dependencies, ["has_balance"]);
    assert!(check.args["balance"].required);
    assert_eq!(check.args["balance"].description, "the payer's balance");
    assert_eq!(spec.hooks["credit"].params["credited"], "${amount}");
    assert_eq!(
        spec.programs["make_deposit"].outputs["credited"].description,
        "what was credited"
    );
}

#[test]
fn ryuso_rules_are_checked_name_outputs_old_args_and_reserved_metadata() {
    let e = errors(
        r#"
name = "bad/name!"
[programs.p]
hooks = ["hooks.a", "hooks.a", "hooks.ghost"]
args.metadata = { type = "dict" }
[hooks.a]
reference = "set"
args = { path = "/tmp/x" }
[hooks.b]
reference = "set"
args.need = { type = "int", default = 3 }
dependencies = ["programs.p"]
"#,
        Format::Toml,
    );
    let expect = [
        ("name", "letters, digits, spaces, `_` and `-` only"),
        ("programs.p.outputs", "required"),
        ("programs.p.hooks[1]", "duplicate name `hooks.a`"),
        ("programs.p.hooks[2]", "unknown hook `ghost`"),
        ("programs.p.args.metadata", "reserved"),
        ("hooks.a.args.path", "rename this hook's `args` to `params`"),
        (
            "hooks.b.args.need.default",
            "unknown key (expected one of: type, required, description)",
        ),
        ("hooks.b.dependencies[0]", "only hooks can be named here"),
    ];
    for (path, needle) in expect {
        assert!(e.has(path, needle), "no `{needle}` at {path} in:\n{e}");
    }
    assert_eq!(e.errors.len(), expect.len(), "{e}");
}
