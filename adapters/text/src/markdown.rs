//! Markdown flattened to the plain text of chats that render none (WeChat, WeCom's plain text).

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Flattens markdown (what LLMs answer in) to the plain text a chat without markdown shows.
///
/// Headings, paragraphs, block quotes and tables become text blocks separated by one blank line;
/// emphasis markers disappear; list items become `• item` / `1. item` lines, nested lists indented
/// by two spaces per level; code keeps its content verbatim without fences or backticks; links
/// become `text (url)` (just `url` when they are the same) and images `[图片] (url)`; table cells
/// are joined by ` | `. No line ends in whitespace and the text neither starts nor ends with a
/// newline.
pub fn markdown_to_text(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut writer = TextWriter::default();
    for event in Parser::new_ext(markdown, options) {
        writer.event(event);
    }
    writer.finish()
}

#[derive(Default)]
struct TextWriter {
    out: String,
    /// One entry per open list: the next number of an ordered list, `None` for a bullet list.
    lists: Vec<Option<u64>>,
    /// Open links: where their text starts in `out`, and their destination.
    links: Vec<(usize, String)>,
    /// Open images: their alt text is not shown.
    images: usize,
    /// The content of an open code or HTML block, written once complete (without its final newline).
    block: Option<String>,
    /// Rows already started in the current table, and cells in the current row.
    rows: usize,
    cells: usize,
    /// The cursor is right after a list marker: the item's first block continues this line.
    after_marker: bool,
    /// The cursor is at the start of an empty line on which a block may begin.
    fresh_line: bool,
}

impl TextWriter {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) | Event::Code(text) => self.text(&text),
            Event::InlineMath(text) | Event::DisplayMath(text) => self.text(&text),
            Event::Html(html) | Event::InlineHtml(html) => {
                if is_line_break_tag(&html) {
                    self.newline();
                } else {
                    self.text(&html);
                }
            }
            Event::FootnoteReference(name) => self.text(&format!("[{name}]")),
            Event::SoftBreak | Event::HardBreak => self.newline(),
            Event::Rule => {
                self.start_block();
                self.write("———");
            }
            Event::TaskListMarker(done) => self.write(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::Heading { .. } | Tag::BlockQuote(_) => self.start_block(),
            Tag::CodeBlock(_) | Tag::HtmlBlock => {
                self.start_block();
                self.block = Some(String::new());
            }
            Tag::List(first) => {
                if self.lists.is_empty() {
                    self.start_block();
                }
                self.lists.push(first);
            }
            Tag::Item => self.start_item(),
            Tag::Table(_) => {
                self.start_block();
                self.rows = 0;
            }
            Tag::TableHead | Tag::TableRow => {
                if self.rows > 0 {
                    self.newline();
                }
                self.rows += 1;
                self.cells = 0;
            }
            Tag::TableCell => {
                if self.cells > 0 {
                    self.write(" | ");
                }
                self.cells += 1;
            }
            Tag::Link { dest_url, .. } => self.links.push((self.out.len(), dest_url.to_string())),
            Tag::Image { dest_url, .. } => {
                if self.images == 0 {
                    self.write("[图片]");
                    if !dest_url.is_empty() {
                        self.write(&format!(" ({dest_url})"));
                    }
                }
                self.images += 1;
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::CodeBlock | TagEnd::HtmlBlock => {
                if let Some(block) = self.block.take() {
                    self.write(block.trim_end_matches('\n'));
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
            }
            TagEnd::Link => self.end_link(),
            TagEnd::Image => self.images = self.images.saturating_sub(1),
            _ => {}
        }
    }

    fn start_item(&mut self) {
        if !self.out.is_empty() && !self.fresh_line {
            self.out.push('\n');
        }
        let depth = self.lists.len().saturating_sub(1);
        self.out.push_str(&"  ".repeat(depth));
        let marker = match self.lists.last_mut() {
            Some(Some(number)) => {
                let marker = format!("{number}. ");
                *number = number.saturating_add(1);
                marker
            }
            _ => "• ".to_owned(),
        };
        self.out.push_str(&marker);
        self.fresh_line = false;
        self.after_marker = true;
    }

    fn end_link(&mut self) {
        let Some((start, url)) = self.links.pop() else {
            return;
        };
        let text = self.out.get(start..).unwrap_or_default();
        let same = text == url || url.strip_prefix("mailto:") == Some(text);
        if url.is_empty() || same {
            return;
        }
        if text.trim().is_empty() {
            self.write(&url);
        } else {
            self.write(&format!(" ({url})"));
        }
    }

    /// Separates a new block from what came before: a blank line at the top level, a line break
    /// inside a list item (list items stay compact).
    fn start_block(&mut self) {
        if self.after_marker || self.fresh_line || self.out.is_empty() {
            self.after_marker = false;
            return;
        }
        if self.lists.is_empty() {
            self.out.push_str("\n\n");
        } else {
            self.newline();
        }
        self.fresh_line = true;
    }

    fn text(&mut self, text: &str) {
        if self.images > 0 {
            return;
        }
        match &mut self.block {
            Some(block) => block.push_str(text),
            None => self.write(text),
        }
    }

    /// Writes text, indenting continuation lines under the current list item.
    fn write(&mut self, text: &str) {
        let mut lines = text.split('\n');
        if let Some(first) = lines.next() {
            self.out.push_str(first);
        }
        for line in lines {
            self.newline();
            self.out.push_str(line);
        }
        self.after_marker = false;
        self.fresh_line = false;
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.out.push_str(&"  ".repeat(self.lists.len()));
    }

    fn finish(self) -> String {
        let lines: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        lines.join("\n").trim_matches('\n').to_owned()
    }
}

fn is_line_break_tag(html: &str) -> bool {
    let tag = html.trim().to_ascii_lowercase();
    matches!(tag.as_str(), "<br>" | "<br/>" | "<br />")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_blocks_and_inline_markup() {
        let markdown = "# Title\n\nSome **bold**, *italic*, ~~gone~~ and `code`.\nNext line.\n\n> quoted *text*\n\n---\n\nEnd";

        assert_eq!(
            markdown_to_text(markdown),
            "Title\n\nSome bold, italic, gone and code.\nNext line.\n\nquoted text\n\n———\n\nEnd"
        );
    }

    #[test]
    fn renders_lists_with_markers_and_indentation() {
        let markdown = "Intro:\n\n- one\n- two\n  - nested *a*\n  - nested b\n- three\n\n3. third\n4. fourth\n\nAfter";

        assert_eq!(
            markdown_to_text(markdown),
            "Intro:\n\n• one\n• two\n  • nested a\n  • nested b\n• three\n\n3. third\n4. fourth\n\nAfter"
        );
    }

    #[test]
    fn keeps_loose_list_items_compact() {
        let markdown = "1. first\n\n   more of first\n\n2. second\n";

        assert_eq!(
            markdown_to_text(markdown),
            "1. first\n  more of first\n2. second"
        );
    }

    #[test]
    fn keeps_code_verbatim_without_fences() {
        let markdown = "Run:\n\n```rust\nfn main() {\n    println!(\"*hi*\");\n}\n```\n\nDone";

        assert_eq!(
            markdown_to_text(markdown),
            "Run:\n\nfn main() {\n    println!(\"*hi*\");\n}\n\nDone"
        );
    }

    #[test]
    fn writes_links_and_images_with_their_urls() {
        let markdown = "See [the docs](https://d.example/x) or <https://a.example>, mail <me@example.com>.\n\n![logo](https://i.example/l.png)";

        assert_eq!(
            markdown_to_text(markdown),
            "See the docs (https://d.example/x) or https://a.example, mail me@example.com.\n\n[图片] (https://i.example/l.png)"
        );
    }

    #[test]
    fn joins_table_cells() {
        let markdown = "| a | b |\n|---|---|\n| 1 | **2** |\n| 3 | 4 |\n\nafter";

        assert_eq!(markdown_to_text(markdown), "a | b\n1 | 2\n3 | 4\n\nafter");
    }

    #[test]
    fn leaves_plain_text_alone() {
        assert_eq!(markdown_to_text("你好，世界"), "你好，世界");
        assert_eq!(markdown_to_text(""), "");
        assert_eq!(markdown_to_text("a<br>b"), "a\nb");
    }
}
