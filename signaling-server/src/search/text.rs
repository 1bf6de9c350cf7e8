//! How text becomes search tokens, the same way for messages (the index) and for queries, on
//! both databases: fold (compatibility decomposition, diacritics dropped, lowercase), then
//! split into words (runs of letters and digits) and runs of CJK characters. A word is one
//! token. A CJK run, which has no spaces between its words, becomes its bigrams (in order)
//! and then its single characters, so that a Chinese word of any length is found: one
//! character by its unigram, two by their bigram, more by the phrase of their bigrams (which
//! are consecutive positions in the index). Highlights are found on the same segments and
//! given as UTF-16 ranges of the original text.

use hearth_protocol::api::TextRange;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Longer tokens are left out of the index and of queries (nobody searches for a 100-byte
/// word, and PostgreSQL refuses lexemes over 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 100;

/// Marks the tokens we add for a message's channel and author (`in:` and `from:`): a private
/// use character, which no folded text ever contains.
const TAG: char = '\u{E000}';

/// Whether `c` belongs to a script written without spaces between words, searched by
/// character n-grams: Han ideographs, kana, bopomofo and Hangul.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3005..=0x3007 | 0x3040..=0x30FF | 0x3100..=0x312F | 0x3130..=0x318F | 0x31A0..=0x31FF
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xA960..=0xA97F | 0xAC00..=0xD7AF | 0xF900..=0xFAFF
        | 0x1100..=0x11FF | 0x20000..=0x323AF)
}

/// The folded form of one character: compatibility decomposition (full-width letters, ligatures
/// and circled digits become plain ones), combining marks dropped (é → e), lowercase. Hangul
/// syllables are kept whole (their decomposition is into jamo, not into letter and mark).
fn fold(c: char, out: &mut impl FnMut(char)) {
    if ('\u{AC00}'..='\u{D7A3}').contains(&c) {
        out(c);
        return;
    }
    decompose_compatible(c, |d| {
        if !is_combining_mark(d) {
            for l in d.to_lowercase() {
                out(l);
            }
        }
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Cjk,
}

/// A run of folded characters of one class, each with the UTF-16 span of the character of
/// the original text it came from.
#[derive(Debug)]
struct Segment {
    class: Class,
    chars: Vec<char>,
    spans: Vec<(u32, u32)>,
}

fn segments(text: &str) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut open = false;
    let mut at: u32 = 0;
    for c in text.chars() {
        let span = (at, at + c.len_utf16() as u32);
        at = span.1;
        let mut folded = Vec::new();
        fold(c, &mut |f| folded.push(f));
        if folded.is_empty() {
            // A lone combining mark belongs to the character before it: no break.
            continue;
        }
        for f in folded {
            let class = if is_cjk(f) {
                Class::Cjk
            } else if f.is_alphanumeric() {
                Class::Word
            } else {
                open = false;
                continue;
            };
            match out.last_mut() {
                Some(seg) if open && seg.class == class => {
                    seg.chars.push(f);
                    seg.spans.push(span);
                }
                _ => {
                    out.push(Segment { class, chars: vec![f], spans: vec![span] });
                    open = true;
                }
            }
        }
    }
    out
}

/// A word or a CJK run of a query: each must occur in a message for it to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Word(String),
    Cjk(Vec<char>),
}

impl Term {
    /// The index tokens that must occur at consecutive positions: the word itself, a lone
    /// character, or the bigrams of a longer run.
    pub fn tokens(&self) -> Vec<String> {
        match self {
            Term::Word(w) => vec![w.clone()],
            Term::Cjk(chars) if chars.len() == 1 => vec![chars[0].to_string()],
            Term::Cjk(chars) => chars.windows(2).map(|w| w.iter().collect()).collect(),
        }
    }
}

/// The index tokens of a message: its words and CJK n-grams, then its channel and author
/// tags (so `in:` and `from:` are full-text conditions too).
pub fn index_tokens(content: &str, channel: i64, author: i64) -> Vec<String> {
    let mut tokens = Vec::new();
    for seg in segments(content) {
        match seg.class {
            Class::Word => {
                let word: String = seg.chars.iter().collect();
                if word.len() <= MAX_TOKEN_BYTES {
                    tokens.push(word);
                }
            }
            Class::Cjk => {
                tokens.extend(seg.chars.windows(2).map(|w| w.iter().collect::<String>()));
                tokens.extend(seg.chars.iter().map(|c| c.to_string()));
            }
        }
    }
    tokens.push(channel_tag(channel));
    tokens.push(author_tag(author));
    tokens
}

pub fn channel_tag(channel: i64) -> String {
    format!("{TAG}c{channel}")
}

pub fn author_tag(author: i64) -> String {
    format!("{TAG}a{author}")
}

/// The terms of a query's text, each once.
pub fn terms(text: &str) -> Vec<Term> {
    let mut out: Vec<Term> = Vec::new();
    for seg in segments(text) {
        let term = match seg.class {
            Class::Word => {
                let word: String = seg.chars.iter().collect();
                if word.len() > MAX_TOKEN_BYTES {
                    continue;
                }
                Term::Word(word)
            }
            Class::Cjk => Term::Cjk(seg.chars),
        };
        if !out.contains(&term) {
            out.push(term);
        }
    }
    out
}

/// Where `terms` occur in `content`: whole words equal to a word term, and every occurrence
/// of a CJK term inside a CJK run; sorted, overlapping and touching ranges merged.
pub fn highlights(content: &str, terms: &[Term]) -> Vec<TextRange> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for seg in segments(content) {
        let span = |from: usize, to: usize| (seg.spans[from].0, seg.spans[to - 1].1);
        match seg.class {
            Class::Word => {
                let word: String = seg.chars.iter().collect();
                if terms.iter().any(|t| matches!(t, Term::Word(w) if *w == word)) {
                    ranges.push(span(0, seg.chars.len()));
                }
            }
            Class::Cjk => {
                for t in terms {
                    let Term::Cjk(needle) = t else { continue };
                    if needle.is_empty() || needle.len() > seg.chars.len() {
                        continue;
                    }
                    for start in 0..=seg.chars.len() - needle.len() {
                        if seg.chars[start..start + needle.len()] == needle[..] {
                            ranges.push(span(start, start + needle.len()));
                        }
                    }
                }
            }
        }
    }
    ranges.sort();
    let mut merged: Vec<TextRange> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => merged.push(TextRange { start, end }),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(content: &str) -> Vec<String> {
        let mut t = index_tokens(content, 1, 2);
        t.truncate(t.len() - 2);
        t
    }

    fn utf16_slice(text: &str, r: &TextRange) -> String {
        let units: Vec<u16> = text.encode_utf16().collect();
        String::from_utf16(&units[r.start as usize..r.end as usize]).unwrap()
    }

    #[test]
    fn words_are_folded_to_lowercase_without_diacritics() {
        assert_eq!(words("Crème BRÛLÉE, naïve café!"), ["creme", "brulee", "naive", "cafe"]);
        assert_eq!(words("ｆｕｌｌ－ｗｉｄｔｈ ﬁne ①"), ["full", "width", "fine", "1"]);
        assert_eq!(words("e\u{301}te\u{301}"), ["ete"], "decomposed accents fold the same");
        assert_eq!(words("don't e-mail x_y 3.14"), ["don", "t", "e", "mail", "x", "y", "3", "14"]);
    }

    #[test]
    fn cjk_runs_become_bigrams_then_unigrams() {
        assert_eq!(
            words("我們晚餐吃什麼"),
            ["我們", "們晚", "晚餐", "餐吃", "吃什", "什麼", "我", "們", "晚", "餐", "吃", "什", "麼"]
        );
        assert_eq!(words("好"), ["好"]);
        assert_eq!(words("明天dinner在家"), ["明天", "明", "天", "dinner", "在家", "在", "家"]);
        assert_eq!(words("今晚。吃麵"), ["今晚", "今", "晚", "吃麵", "吃", "麵"]);
    }

    #[test]
    fn tags_name_the_channel_and_author() {
        let t = index_tokens("hi", 7, 9);
        assert_eq!(t[1..], [channel_tag(7), author_tag(9)]);
        assert!(
            terms(&channel_tag(7)).iter().all(|t| !t.tokens().contains(&channel_tag(7))),
            "no query text can produce a tag"
        );
    }

    #[test]
    fn query_terms_match_index_tokens() {
        assert_eq!(terms("Dinner dinner 晚餐"), [Term::Word("dinner".into()), Term::Cjk(vec!['晚', '餐'])]);
        assert_eq!(Term::Cjk(vec!['晚']).tokens(), ["晚"]);
        assert_eq!(Term::Cjk(vec!['吃', '什', '麼']).tokens(), ["吃什", "什麼"]);
        let long = "x".repeat(MAX_TOKEN_BYTES + 1);
        assert!(terms(&long).is_empty());
        assert!(words(&long).is_empty());
    }

    #[test]
    fn highlights_are_utf16_ranges_of_the_original_text() {
        let text = "🎉 Café at CAFÉ, 我們的晚餐 and café-au-lait";
        let ranges = highlights(text, &terms("cafe 晚餐"));
        let found: Vec<String> = ranges.iter().map(|r| utf16_slice(text, r)).collect();
        assert_eq!(found, ["Café", "CAFÉ", "晚餐", "café"]);
        assert_eq!(ranges[0], TextRange { start: 3, end: 7 }, "the emoji counts two UTF-16 units");
    }

    #[test]
    fn overlapping_highlights_merge() {
        let text = "晚餐晚餐";
        let ranges = highlights(text, &terms("晚餐 餐晚"));
        assert_eq!(ranges, [TextRange { start: 0, end: 4 }]);
        assert!(highlights("dinnertime", &terms("dinner")).is_empty(), "whole words only");
    }
}
