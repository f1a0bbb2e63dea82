//! Go's `encoding/json` syntax error messages, so that a malformed body gets the same
//! 400 message as from a real server (golden 03: "invalid character 'n' looking for
//! beginning of object key string").

/// `'x'` as Go's scanner quotes an offending byte.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\n' => r"'\n'".to_string(),
        b'\r' => r"'\r'".to_string(),
        b'\t' => r"'\t'".to_string(),
        0x20..=0x7e => format!("'{}'", c as char),
        _ => format!("'\\x{c:02x}'"),
    }
}

struct P<'a> {
    d: &'a [u8],
    i: usize,
}

type R = Result<(), String>;

const EOF: &str = "unexpected end of JSON input";

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.d.len() && matches!(self.d[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.d.get(self.i).copied()
    }

    fn bad(&self, c: u8, ctx: &str) -> String {
        format!("invalid character {} {ctx}", quote_char(c))
    }

    fn value(&mut self) -> R {
        self.ws();
        let Some(c) = self.peek() else {
            return Err(EOF.into());
        };
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => Err(self.bad(c, "looking for beginning of value")),
        }
    }

    /// Past an opening bracket; true when `close` follows at once (also consumed).
    fn open_empty(&mut self, close: u8) -> bool {
        self.i += 1;
        self.ws();
        let empty = self.peek() == Some(close);
        if empty {
            self.i += 1;
        }
        empty
    }

    /// After a member or element: a `,` (false: more follow) or `close` (true: the end).
    fn comma_or_close(&mut self, close: u8, ctx: &str) -> Result<bool, String> {
        self.ws();
        match self.peek() {
            None => Err(EOF.into()),
            Some(b',') => {
                self.i += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            Some(c) => Err(self.bad(c, ctx)),
        }
    }

    fn object(&mut self) -> R {
        if self.open_empty(b'}') {
            return Ok(());
        }
        loop {
            self.ws();
            match self.peek() {
                None => return Err(EOF.into()),
                Some(b'"') => self.string()?,
                Some(c) => return Err(self.bad(c, "looking for beginning of object key string")),
            }
            self.ws();
            match self.peek() {
                None => return Err(EOF.into()),
                Some(b':') => self.i += 1,
                Some(c) => return Err(self.bad(c, "after object key")),
            }
            self.value()?;
            if self.comma_or_close(b'}', "after object key:value pair")? {
                return Ok(());
            }
        }
    }

    fn array(&mut self) -> R {
        if self.open_empty(b']') {
            return Ok(());
        }
        loop {
            self.value()?;
            if self.comma_or_close(b']', "after array element")? {
                return Ok(());
            }
        }
    }

    fn string(&mut self) -> R {
        self.i += 1;
        loop {
            let Some(c) = self.peek() else {
                return Err(EOF.into());
            };
            self.i += 1;
            match c {
                b'"' => return Ok(()),
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(EOF.into());
                    };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            for _ in 0..4 {
                                let Some(h) = self.peek() else {
                                    return Err(EOF.into());
                                };
                                if !h.is_ascii_hexdigit() {
                                    return Err(self.bad(h, "in \\u hexadecimal character escape"));
                                }
                                self.i += 1;
                            }
                        }
                        _ => return Err(self.bad(e, "in string escape code")),
                    }
                }
                0..=0x1f => return Err(self.bad(c, "in string literal")),
                _ => {}
            }
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    /// A digit must come next; else the error, `ctx` saying where.
    fn expect_digit(&self, ctx: &str) -> R {
        match self.peek() {
            None => Err(EOF.into()),
            Some(c) if !c.is_ascii_digit() => Err(self.bad(c, ctx)),
            Some(_) => Ok(()),
        }
    }

    fn number(&mut self) -> R {
        if self.peek() == Some(b'-') {
            self.i += 1;
            self.expect_digit("in numeric literal")?;
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.expect_digit("after decimal point in numeric literal")?;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.expect_digit("in exponent of numeric literal")?;
            self.digits();
        }
        Ok(())
    }

    fn literal(&mut self, word: &str) -> R {
        for expected in word.bytes() {
            let Some(c) = self.peek() else {
                return Err(EOF.into());
            };
            if c != expected {
                return Err(self.bad(
                    c,
                    &format!("in literal {word} (expecting {})", quote_char(expected)),
                ));
            }
            self.i += 1;
        }
        Ok(())
    }
}

/// The message Go's `json.Unmarshal` gives for a syntax error in `data`, or None if it parses.
pub fn syntax_error(data: &[u8]) -> Option<String> {
    let mut p = P { d: data, i: 0 };
    if let Err(e) = p.value() {
        return Some(e);
    }
    p.ws();
    p.peek().map(|c| p.bad(c, "after top-level value"))
}

/// How the real server summarises a body in decode errors (`summarizeData`).
pub fn summarize(data: &[u8]) -> String {
    const MAX: usize = 30;
    if data.is_empty() {
        return "<empty>".into();
    }
    if data[0] == b'{' {
        if data.len() > MAX {
            return format!("{} ...", String::from_utf8_lossy(&data[..MAX]));
        }
        return String::from_utf8_lossy(data).into_owned();
    }
    let hex = crate::hex(&data[..data.len().min(MAX)]);
    if data.len() > MAX {
        format!("{hex} ...")
    } else {
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_go() {
        let cases: [(&[u8], &str); 12] = [
            (
                b"{not json",
                "invalid character 'n' looking for beginning of object key string",
            ),
            (b"{\"a\":1", "unexpected end of JSON input"),
            (b"{\"a\" 1}", "invalid character '1' after object key"),
            (
                b"{\"a\":1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            (
                b"[1,]",
                "invalid character ']' looking for beginning of value",
            ),
            (b"{} x", "invalid character 'x' after top-level value"),
            (b"tru", "unexpected end of JSON input"),
            (
                b"nul!",
                "invalid character '!' in literal null (expecting 'l')",
            ),
            (b"-x", "invalid character 'x' in numeric literal"),
            (
                b"1.x",
                "invalid character 'x' after decimal point in numeric literal",
            ),
            (
                b"1ex",
                "invalid character 'x' in exponent of numeric literal",
            ),
            (b"1e+", "unexpected end of JSON input"),
        ];
        for (input, message) in cases {
            assert_eq!(
                syntax_error(input).as_deref(),
                Some(message),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert!(syntax_error(b" {\"a\": [1, 2.5e-3, \"x\\u00e9\", true, null]} ").is_none());
        assert_eq!(summarize(b"{not json"), "{not json");
        assert_eq!(summarize(b"[1]"), "5b315d");
    }
}
