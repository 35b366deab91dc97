//! A printed document read back as a reader would: its text extracted by
//! poppler's `pdftotext` (Debian's poppler-utils) holds every field, in
//! Chinese, on A4; the font comes from Debian's fonts-noto-cjk. Both are
//! installed by this test when it runs as root and they are missing.

use std::path::Path;
use std::process::Command;

use xj_print::{Block, Doc, Printer, Table};

fn ensure(package: &str, file: &str) {
    if Path::new(file).exists() {
        return;
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(root, "this test needs {file} (Debian: apt-get install -y {package}); install it and run again");
    let apt = |args: &[&str]| {
        let ok = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=600"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "apt-get {args:?} failed");
    };
    if Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success())
    {
        return;
    }
    apt(&["update", "-qq"]);
    apt(&["install", "-y", "-qq", package]);
}

fn text_of(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).expect("written");
    let out = Command::new("pdftotext").args(["-layout"]).arg(&path).arg("-").output().expect("pdftotext runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn info_of(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).expect("written");
    let out = Command::new("pdfinfo").arg(&path).output().expect("pdfinfo runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_field_of_a_printed_document_reads_back() {
    ensure("fonts-noto-cjk", xj_print::SYSTEM_FONTS[0].0);
    ensure("poppler-utils", "/usr/bin/pdftotext");
    let printer = Printer::load(None).expect("a CJK font");
    let rows: Vec<Vec<String>> =
        (1..=60).map(|i| vec![format!("清河县第{i}执法单位"), "按时报送".into(), (i * 3).to_string()]).collect();
    let doc = Doc {
        title: "行政执法工作月报汇总".into(),
        landscape: true,
        blocks: vec![
            Block::Title("行政执法工作月报汇总".into()),
            Block::Subtitle("清河县（990101）　2026年11月".into()),
            Block::Field { label: "报送截止".into(), value: "2026-12-10 24:00".into() },
            Block::Paragraph("本表由行政执法协调监督平台根据各单位报送的月报和平台记录生成。".into()),
            Block::Table(Table {
                header: vec!["单位".into(), "报送情况".into(), "告知承诺制事项".into()],
                rows,
                widths: vec![3.0, 1.5, 1.5],
            }),
        ],
        footer: "XJ-TEST".into(),
    };
    let pdf = printer.render(&doc).expect("a PDF");
    // Kept for a look (pdftoppm -png): target/tmp/printed-sample.pdf.
    let _ = std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join("printed-sample.pdf"), &pdf);
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    // Subset: a few pages of Chinese, not the 18 MB collection.
    assert!(pdf.len() < 400_000, "{} bytes", pdf.len());
    let text = text_of(&pdf);
    for want in [
        "行政执法工作月报汇总",
        "清河县（990101）",
        "2026年11月",
        "报送截止",
        "2026-12-10 24:00",
        "告知承诺制事项",
        "清河县第1执法单位",
        "清河县第60执法单位",
        "180",
        "XJ-TEST",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let info = info_of(&pdf);
    assert!(info.contains("Title:           行政执法工作月报汇总"), "{info}");
    assert!(info.contains("841.89 x 595.28") || info.contains("842 x 595"), "A4 landscape: {info}");
    let pages: usize =
        info.lines().find_map(|l| l.strip_prefix("Pages:")).and_then(|n| n.trim().parse().ok()).unwrap_or(0);
    assert!(pages >= 2, "sixty rows run onto a second page: {info}");
}
