//! Printable documents: a few blocks (title, headings, paragraphs, labelled
//! fields, tables) laid out on A4 pages and written as PDF with a CJK font
//! embedded (subset, so a page of Chinese stays small). What the hub prints
//! — the consolidated monthly report today — is a document of these blocks;
//! the layout is deliberately plain, like the county's own forms.
//!
//! The font is the system's: Debian's `fonts-noto-cjk` (Noto Sans CJK SC)
//! or `fonts-wqy-microhei`, or a file named in the configuration. A hub
//! without one answers with [`PrintError::NoFont`], which names what to
//! install; nothing else of the hub depends on it.

use std::path::{Path, PathBuf};

use krilla::Document;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::text::{Font, TextDirection};

/// Where Debian puts the CJK fonts the hub can use, with the face to take
/// from each collection (2 is Simplified Chinese in Noto's).
pub const SYSTEM_FONTS: &[(&str, u32)] = &[
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
];

#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error(
        "no CJK font to print with: tried {}; install Debian's fonts-noto-cjk (apt-get install fonts-noto-cjk) or name a font file in [print] font",
        .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoFont { tried: Vec<PathBuf> },
    #[error("cannot read the font {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a font this printer can use (face {index})")]
    BadFont { path: PathBuf, index: u32 },
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
}

/// What a document is made of, top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Centred, large: the document's name (e.g. 行政执法工作月报汇总).
    Title(String),
    /// Centred, small: a line under the title (document number, period).
    Subtitle(String),
    Heading(String),
    /// Wrapped to the page's width.
    Paragraph(String),
    /// `label：value`, the value wrapped beside the label.
    Field {
        label: String,
        value: String,
    },
    Table(Table),
    /// Vertical space, in points.
    Gap(f32),
}

/// A ruled table; `widths` are relative column widths (one per column).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub widths: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// The PDF's title (its metadata).
    pub title: String,
    pub landscape: bool,
    pub blocks: Vec<Block>,
    /// Printed at the foot of every page with its number (e.g. what to
    /// check the document against).
    pub footer: String,
}

/// A font, loaded once, to print documents with.
#[derive(Clone)]
pub struct Printer {
    font: Font,
    pub source: PathBuf,
}

impl std::fmt::Debug for Printer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printer").field("source", &self.source).finish()
    }
}

impl Printer {
    /// The font at `path` (its first face, or Noto's Chinese one), or the
    /// first of [`SYSTEM_FONTS`] that exists.
    pub fn load(path: Option<&Path>) -> Result<Self, PrintError> {
        let candidates: Vec<(PathBuf, u32)> = match path {
            Some(p) => {
                let noto = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("Noto") && n.ends_with(".ttc"));
                vec![(p.to_path_buf(), if noto { 2 } else { 0 })]
            }
            None => SYSTEM_FONTS.iter().map(|(p, i)| (PathBuf::from(p), *i)).collect(),
        };
        let Some((path, index)) = candidates.iter().find(|(p, _)| p.exists()).cloned() else {
            return Err(PrintError::NoFont { tried: candidates.into_iter().map(|(p, _)| p).collect() });
        };
        let data = std::fs::read(&path).map_err(|source| PrintError::Read { path: path.clone(), source })?;
        let font = Font::new(data.into(), index).ok_or_else(|| PrintError::BadFont { path: path.clone(), index })?;
        Ok(Self { font, source: path })
    }

    /// The document as PDF bytes.
    pub fn render(&self, doc: &Doc) -> Result<Vec<u8>, PrintError> {
        let pages = layout(doc);
        let (w, h) = page_size(doc.landscape);
        let mut document = Document::new();
        document.set_metadata(Metadata::new().title(doc.title.clone()).creator("xianjie".to_string()));
        let total = pages.len();
        for (n, ops) in pages.iter().enumerate() {
            let settings = PageSettings::from_wh(w, h).ok_or_else(|| PrintError::Pdf("bad page size".into()))?;
            let mut page = document.start_page_with(settings);
            let mut surface = page.surface();
            for op in ops {
                match op {
                    Op::Text { x, y, size, text } => {
                        surface.draw_text(
                            Point::from_xy(*x, *y),
                            self.font.clone(),
                            *size,
                            text,
                            false,
                            TextDirection::Auto,
                        );
                    }
                    Op::Line { x1, y1, x2, y2 } => {
                        let mut pb = PathBuilder::new();
                        pb.move_to(*x1, *y1);
                        pb.line_to(*x2, *y2);
                        if let Some(path) = pb.finish() {
                            // Rules are stroked, never filled; text is
                            // filled, never stroked (a stroke would bold it).
                            surface.set_fill(None);
                            surface.set_stroke(Some(Stroke { width: 0.6, ..Default::default() }));
                            surface.draw_path(&path);
                            surface.set_stroke(None);
                            surface.set_fill(Some(Default::default()));
                        }
                    }
                }
            }
            let foot = format!("{}　第 {} 页 / 共 {} 页", doc.footer, n + 1, total);
            let size = 8.0;
            let fx = (w - text_width(&foot, size)) / 2.0;
            surface.draw_text(
                Point::from_xy(fx.max(MARGIN), h - MARGIN / 2.0),
                self.font.clone(),
                size,
                &foot,
                false,
                TextDirection::Auto,
            );
            surface.finish();
            page.finish();
        }
        document.finish().map_err(|e| PrintError::Pdf(format!("{e:?}")))
    }
}

const MARGIN: f32 = 50.0;

fn page_size(landscape: bool) -> (f32, f32) {
    // A4 in points.
    if landscape { (841.89, 595.28) } else { (595.28, 841.89) }
}

/// Something drawn on a page (`y` is the text's baseline, from the top).
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Text { x: f32, y: f32, size: f32, text: String },
    Line { x1: f32, y1: f32, x2: f32, y2: f32 },
}

/// How wide a character prints, in ems: Han characters and full-width
/// forms take a whole em; the rest (digits, Latin) about half. Estimated
/// on the generous side so a line never runs past its cell.
fn char_em(c: char) -> f32 {
    if c.is_ascii() { if c.is_ascii_uppercase() || c == 'W' || c == 'M' { 0.66 } else { 0.56 } } else { 1.0 }
}

fn text_width(text: &str, size: f32) -> f32 {
    text.chars().map(char_em).sum::<f32>() * size
}

/// `text` broken into lines no wider than `width` (between any two
/// characters: Chinese has no spaces to break at; a line break in the text
/// is kept).
fn wrap(text: &str, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut w = 0.0;
        for c in para.chars().filter(|c| !c.is_control()) {
            let cw = char_em(c) * size;
            if w + cw > width && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                w = 0.0;
            }
            line.push(c);
            w += cw;
        }
        lines.push(line);
    }
    lines
}

struct Pager {
    pages: Vec<Vec<Op>>,
    y: f32,
    bottom: f32,
}

impl Pager {
    fn room(&mut self, needed: f32) {
        if self.y + needed > self.bottom && self.y > MARGIN + 1.0 {
            self.pages.push(Vec::new());
            self.y = MARGIN;
        }
    }

    fn push(&mut self, op: Op) {
        if let Some(p) = self.pages.last_mut() {
            p.push(op);
        }
    }
}

fn layout(doc: &Doc) -> Vec<Vec<Op>> {
    let (w, h) = page_size(doc.landscape);
    let width = w - 2.0 * MARGIN;
    let mut p = Pager { pages: vec![Vec::new()], y: MARGIN, bottom: h - MARGIN };
    for block in &doc.blocks {
        match block {
            Block::Title(t) | Block::Subtitle(t) => {
                let size = if matches!(block, Block::Title(_)) { 18.0 } else { 10.5 };
                for line in wrap(t, size, width) {
                    p.room(size * 1.6);
                    p.y += size * 1.3;
                    let x = MARGIN + ((width - text_width(&line, size)) / 2.0).max(0.0);
                    p.push(Op::Text { x, y: p.y, size, text: line });
                    p.y += size * 0.3;
                }
                p.y += size * 0.4;
            }
            Block::Heading(t) | Block::Paragraph(t) => {
                let size = if matches!(block, Block::Heading(_)) { 12.5 } else { 10.5 };
                if matches!(block, Block::Heading(_)) {
                    p.y += 6.0;
                }
                for line in wrap(t, size, width) {
                    p.room(size * 1.6);
                    p.y += size * 1.25;
                    p.push(Op::Text { x: MARGIN, y: p.y, size, text: line });
                    p.y += size * 0.35;
                }
            }
            Block::Field { label, value } => {
                let size = 10.5;
                let head = format!("{label}：");
                let indent = text_width(&head, size).min(width / 3.0);
                for (i, line) in wrap(value, size, width - indent).into_iter().enumerate() {
                    p.room(size * 1.6);
                    p.y += size * 1.25;
                    if i == 0 {
                        p.push(Op::Text { x: MARGIN, y: p.y, size, text: head.clone() });
                    }
                    p.push(Op::Text { x: MARGIN + indent, y: p.y, size, text: line });
                    p.y += size * 0.35;
                }
            }
            Block::Table(t) => table(&mut p, t, width),
            Block::Gap(g) => p.y += g,
        }
    }
    p.pages
}

/// A ruled table; the header is repeated on every page it runs onto.
fn table(p: &mut Pager, t: &Table, width: f32) {
    let size = 8.5;
    let pad = 3.0;
    let n = t.header.len().max(1);
    let total: f32 = t.widths.iter().take(n).sum::<f32>().max(f32::EPSILON);
    let cols: Vec<f32> = (0..n).map(|i| t.widths.get(i).copied().unwrap_or(1.0) / total * width).collect();
    let row_lines = |cells: &[String]| -> Vec<Vec<String>> {
        (0..n).map(|i| wrap(cells.get(i).map(String::as_str).unwrap_or(""), size, cols[i] - 2.0 * pad)).collect()
    };
    let draw_row = |p: &mut Pager, cells: &[Vec<String>]| {
        let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let height = lines as f32 * size * 1.3 + 2.0 * pad;
        let top = p.y;
        let mut x = MARGIN;
        for (i, c) in cells.iter().enumerate() {
            for (k, line) in c.iter().enumerate() {
                let y = top + pad + (k as f32 + 1.0) * size * 1.3 - size * 0.3;
                p.push(Op::Text { x: x + pad, y, size, text: line.clone() });
            }
            p.push(Op::Line { x1: x, y1: top, x2: x, y2: top + height });
            x += cols[i];
        }
        p.push(Op::Line { x1: x, y1: top, x2: x, y2: top + height });
        p.push(Op::Line { x1: MARGIN, y1: top, x2: MARGIN + width, y2: top });
        p.push(Op::Line { x1: MARGIN, y1: top + height, x2: MARGIN + width, y2: top + height });
        p.y = top + height;
        height
    };
    let header = row_lines(&t.header);
    let header_height = header.iter().map(Vec::len).max().unwrap_or(1) as f32 * size * 1.3 + 2.0 * pad;
    p.y += 4.0;
    p.room(header_height * 2.0);
    draw_row(p, &header);
    for row in &t.rows {
        let cells = row_lines(row);
        let height = cells.iter().map(Vec::len).max().unwrap_or(1) as f32 * size * 1.3 + 2.0 * pad;
        let before = p.pages.len();
        p.room(height);
        if p.pages.len() != before {
            draw_row(p, &header);
        }
        draw_row(p, &cells);
    }
    p.y += 6.0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_wraps_within_its_width_and_keeps_every_character() {
        let text = "清河县市场监督管理局 2026年11月 行政执法工作月报：证明事项告知承诺制事项 12 件";
        let lines = wrap(text, 10.0, 100.0);
        assert!(lines.len() > 2, "{lines:?}");
        assert!(lines.iter().all(|l| text_width(l, 10.0) <= 100.0 + 10.0), "{lines:?}");
        assert_eq!(lines.concat(), text);
    }

    #[test]
    fn a_long_table_runs_onto_more_pages_with_its_header_again() {
        let rows = (0..120).map(|i| vec![format!("机关{i}"), i.to_string()]).collect();
        let doc = Doc {
            title: "t".into(),
            landscape: false,
            blocks: vec![Block::Table(Table {
                header: vec!["机关".into(), "件数".into()],
                rows,
                widths: vec![3.0, 1.0],
            })],
            footer: String::new(),
        };
        let pages = layout(&doc);
        assert!(pages.len() >= 3, "{}", pages.len());
        for page in &pages {
            let header = page.iter().any(|op| matches!(op, Op::Text { text, .. } if text == "件数"));
            assert!(header, "every page repeats the header");
            let (_, h) = page_size(false);
            assert!(page.iter().all(|op| match op {
                Op::Text { y, .. } => *y <= h - MARGIN + 1.0,
                Op::Line { y2, .. } => *y2 <= h - MARGIN + 1.0,
            }));
        }
    }

    #[test]
    fn no_font_says_what_to_install() {
        let e = Printer::load(Some(Path::new("/nonexistent/font.ttc"))).expect_err("no font there");
        assert!(e.to_string().contains("fonts-noto-cjk"), "{e}");
    }
}
