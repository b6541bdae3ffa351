//! A tiny document model rendered both as Markdown (`report.md`, figures linked) and as a
//! self-contained HTML page (`report.html`, figures embedded as data URIs), so the two
//! reports always say the same thing.

use std::path::{Path, PathBuf};

use base64::Engine;

/// One block of a report.
pub enum Block {
    /// A heading of level 1-3.
    Heading(u8, String),
    /// A paragraph of plain text (`**bold**` and `` `code` `` are kept in Markdown and
    /// rendered in HTML).
    Paragraph(String),
    /// A bulleted list.
    List(Vec<String>),
    /// A table: header and rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// A figure: file (relative to the report directory) and caption.
    Figure(PathBuf, String),
}

/// A report: a title and blocks.
pub struct Document {
    /// Title (the page's `<h1>`).
    pub title: String,
    /// Content.
    pub blocks: Vec<Block>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Inline markup: `**bold**` and `` `code` `` to HTML.
fn inline_html(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(text).split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            for (j, piece) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    out.push_str(&format!("<strong>{piece}</strong>"));
                } else {
                    out.push_str(piece);
                }
            }
        }
    }
    out
}

impl Document {
    /// The Markdown form.
    pub fn markdown(&self) -> String {
        let mut md = format!("# {}\n\n", self.title);
        for block in &self.blocks {
            match block {
                Block::Heading(level, text) => {
                    md.push_str(&format!("{} {text}\n\n", "#".repeat(*level as usize + 1)))
                }
                Block::Paragraph(text) => md.push_str(&format!("{text}\n\n")),
                Block::List(items) => {
                    for item in items {
                        md.push_str(&format!("- {item}\n"));
                    }
                    md.push('\n');
                }
                Block::Table(header, rows) => {
                    md.push_str(&format!("| {} |\n", header.join(" | ")));
                    md.push_str(&format!("|{}\n", "---|".repeat(header.len())));
                    for row in rows {
                        md.push_str(&format!("| {} |\n", row.join(" | ")));
                    }
                    md.push('\n');
                }
                Block::Figure(path, caption) => {
                    md.push_str(&format!(
                        "![{caption}]({})\n\n*{caption}*\n\n",
                        path.display()
                    ));
                }
            }
        }
        md
    }

    /// The HTML form, with every figure under `dir` embedded.
    pub fn html(&self, dir: &Path) -> std::io::Result<String> {
        let mut html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
             body {{ font-family: sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em; color: #222; }}\n\
             table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}\n\
             th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}\n\
             td {{ white-space: nowrap; }} .wide {{ overflow-x: auto; }}\n\
             th {{ background: #f3f3f3; }}\n\
             figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 0.9em; }}\n\
             </style>\n</head>\n<body>\n<h1>{}</h1>\n",
            escape(&self.title),
            escape(&self.title)
        );
        for block in &self.blocks {
            match block {
                Block::Heading(level, text) => {
                    let tag = (*level + 1).min(6);
                    html.push_str(&format!("<h{tag}>{}</h{tag}>\n", inline_html(text)));
                }
                Block::Paragraph(text) => html.push_str(&format!("<p>{}</p>\n", inline_html(text))),
                Block::List(items) => {
                    html.push_str("<ul>\n");
                    for item in items {
                        html.push_str(&format!("<li>{}</li>\n", inline_html(item)));
                    }
                    html.push_str("</ul>\n");
                }
                Block::Table(header, rows) => {
                    // Numbers never break inside (a minus or an exponent is no place to
                    // wrap); a table wider than the page scrolls instead.
                    html.push_str("<div class=\"wide\"><table>\n<tr>");
                    for h in header {
                        html.push_str(&format!("<th>{}</th>", inline_html(h)));
                    }
                    html.push_str("</tr>\n");
                    for row in rows {
                        html.push_str("<tr>");
                        for cell in row {
                            html.push_str(&format!("<td>{}</td>", inline_html(cell)));
                        }
                        html.push_str("</tr>\n");
                    }
                    html.push_str("</table></div>\n");
                }
                Block::Figure(path, caption) => {
                    let bytes = std::fs::read(dir.join(path))?;
                    let mime = if path.extension().is_some_and(|e| e == "svg") {
                        "image/svg+xml"
                    } else {
                        "image/png"
                    };
                    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                    html.push_str(&format!(
                        "<figure><img src=\"data:{mime};base64,{data}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
                        escape(caption),
                        inline_html(caption)
                    ));
                }
            }
        }
        html.push_str("</body>\n</html>\n");
        Ok(html)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_and_html_carry_the_same_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.png"), [137u8, 80, 78, 71]).unwrap();
        let doc = Document {
            title: "T <1>".into(),
            blocks: vec![
                Block::Heading(1, "Section".into()),
                Block::Paragraph("a **bold** and `code` word".into()),
                Block::Table(
                    vec!["a".into(), "b".into()],
                    vec![vec!["1".into(), "2".into()]],
                ),
                Block::Figure("f.png".into(), "caption".into()),
            ],
        };
        let md = doc.markdown();
        assert!(
            md.contains("## Section")
                && md.contains("| 1 | 2 |")
                && md.contains("![caption](f.png)")
        );
        let html = doc.html(dir.path()).unwrap();
        assert!(html.contains("<title>T &lt;1&gt;</title>"));
        assert!(html.contains("<strong>bold</strong>") && html.contains("<code>code</code>"));
        assert!(html.contains("data:image/png;base64,iVBORw=="));
    }
}
