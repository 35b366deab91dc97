//! `xj translate` and native formats in the configuration: trying a mapping
//! offline, located problems, and a department added with a mapping file
//! alone (`[formats] dir`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xj(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xj")).args(args).current_dir(root()).output().expect("xj runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn translate_to_canonical_prints_a_valid_message() {
    let o = xj(&[
        "translate",
        "--format",
        "police-xml-v1",
        "--org",
        "qh-police-econ",
        "schemas/formats/police-xml-v1/examples/police_decision.xml",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("canonical JSON");
    assert_eq!(v["type"], "police_decision");
    assert_eq!(v["body"]["decision"], "filed");
    assert_eq!(v["sender"], "qh-police-econ");
}

#[test]
fn translate_reports_problems_where_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("reply.csv");
    std::fs::write(&csv, "文书类型,编号,发送时间,处理意见\n移送复函,X1,2026-11-21,同意\n").expect("write");
    let o = xj(&["translate", "--format", "town-csv-v1", csv.to_str().expect("path")]);
    assert!(!o.status.success());
    let text = out(&o);
    assert!(
        text.contains("(row 2, column 3)") && text.contains("[mapping]") && text.contains("yyyy/MM/dd HH:mm:ss"),
        "{text}"
    );
    assert!(text.contains("(row 2, column 4)") && text.contains("同意"), "{text}");
}

#[test]
fn translate_to_native_writes_the_format_or_says_why_not() {
    let o = xj(&["translate", "--format", "town-csv-v1", "--to", "native", "schemas/examples/case_referral.json"]);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("文书类型,")
            && text.contains("案件移送函")
            && text.contains("张三:99010100001;李四:99010100002"),
        "{text}"
    );
    let o = xj(&["translate", "--format", "court-json-v1", "--to", "native", "schemas/examples/clue_referral.json"]);
    assert!(!o.status.success());
    assert!(out(&o).contains("no native form for a clue_referral"), "{}", out(&o));
}

/// A minimal county: the operator, a coordination office, and one town.
fn county(format: &str, extra: &str) -> String {
    format!(
        "{extra}\n[operator]\ntoken = \"operator-token-0123456789\"\n\n[[org]]\nid = \"qh-coord\"\nname = \"指挥中心\"\nkind = \"coordination_office\"\nregion = \"990101\"\ntoken = \"token-qh-coord-0123456789\"\ndeliver = {{ webhook = \"http://127.0.0.1:9/inbox\" }}\n\n[[org]]\nid = \"qh-town-new\"\nname = \"新镇\"\nkind = \"town_government\"\nregion = \"990101103\"\ntoken = \"token-qh-town-new-0123456789\"\ndeliver = {{ webhook = \"http://127.0.0.1:9/inbox\" }}\nformat = \"{format}\"\n"
    )
}

#[test]
fn an_unknown_format_is_a_configuration_problem_naming_the_known_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("xianjie.toml");
    std::fs::write(&cfg, county("town-csv-v9", "")).expect("write");
    let o = xj(&["check", "--config", cfg.to_str().expect("path")]);
    assert!(!o.status.success());
    let text = out(&o);
    assert!(text.contains("org[1].format") && text.contains("town-csv-v9") && text.contains("samr-json-v1"), "{text}");
}

#[test]
fn a_department_is_added_with_a_mapping_file_and_no_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let formats = dir.path().join("formats/newtown-csv-v1");
    std::fs::create_dir_all(&formats).expect("mkdir");
    let mapping = std::fs::read_to_string(root().join("schemas/formats/town-csv-v1/mapping.toml"))
        .expect("town mapping")
        .replace("name = \"town-csv-v1\"", "name = \"newtown-csv-v1\"")
        .replace("\"西山镇\" = \"990101102\"", "\"西山镇\" = \"990101102\"\n\"新镇\" = \"990101103\"");
    std::fs::write(formats.join("mapping.toml"), mapping).expect("write");
    let cfg = dir.path().join("xianjie.toml");
    std::fs::write(&cfg, county("newtown-csv-v1", "[formats]\ndir = \"formats\"\n")).expect("write");
    let o = xj(&["check", "--config", cfg.to_str().expect("path")]);
    assert!(o.status.success(), "{}", out(&o));
    let csv = dir.path().join("clue.csv");
    let example = std::fs::read_to_string(root().join("schemas/formats/town-csv-v1/examples/clue_referral.csv"))
        .expect("example")
        .replace(",东关镇,", ",新镇,");
    std::fs::write(&csv, example).expect("write");
    let o = xj(&[
        "translate",
        "--config",
        cfg.to_str().expect("path"),
        "--format",
        "newtown-csv-v1",
        "--org",
        "qh-town-new",
        csv.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("canonical JSON");
    assert_eq!(v["body"]["location"]["region"], "990101103");
}
