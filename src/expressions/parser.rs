//! Lexer and Pratt parser for the expr-lang subset Kargo users write, with the operator
//! precedences of expr v1.17 (`github.com/expr-lang/expr/parser/operator`). Every node keeps
//! its byte span so that runtime errors can point into the expression.

/// A parse or evaluation failure at a byte offset of the expression.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SpanError {
    pub(crate) message: String,
    pub(crate) offset: usize,
}

impl SpanError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        SpanError {
            message: message.into(),
            offset,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

// Longest first, so that `?.` wins over `?` and `**` over `*`.
const OPERATORS: &[&str] = &[
    "??", "?.", "..", "==", "!=", "<=", ">=", "&&", "||", "**", "?", ".", "<", ">", "!", "+", "-",
    "*", "/", "%", "^", "(", ")", "[", "]", "{", "}", ",", ":", "|", "#", ";", "=",
];

fn lex(src: &str) -> Result<Vec<Token>, SpanError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if src[i..].starts_with("//") {
            i = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        if src[i..].starts_with("/*") {
            match src[i + 2..].find("*/") {
                Some(n) => i = i + 2 + n + 2,
                None => return Err(SpanError::new(i, "unclosed comment")),
            }
            continue;
        }
        let start = i;
        // `.5` is a float; `..5` stays a range operator.
        let leading_dot = c == b'.'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
            && !(i > 0 && bytes[i - 1] == b'.');
        if c.is_ascii_digit() || leading_dot {
            let (tok, end) = lex_number(src, i)?;
            tokens.push(Token { tok, start, end });
            i = end;
            continue;
        }
        // `b"…"` is a bytes literal; haul holds it as a string.
        let bytes_prefix = c == b'b' && matches!(bytes.get(i + 1), Some(b'"' | b'\''));
        if bytes_prefix {
            i += 1;
        }
        if bytes_prefix || c == b'"' || c == b'\'' || c == b'`' {
            let (s, end) = lex_string(src, i)?;
            tokens.push(Token {
                tok: Tok::Str(s),
                start,
                end,
            });
            i = end;
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('\0');
        if ch == '_' || ch == '$' || ch.is_alphabetic() {
            let mut end = i;
            for (off, ch) in src[i..].char_indices() {
                if ch == '_' || ch == '$' || ch.is_alphanumeric() {
                    end = i + off + ch.len_utf8();
                } else {
                    break;
                }
            }
            tokens.push(Token {
                tok: Tok::Ident(src[i..end].to_string()),
                start,
                end,
            });
            i = end;
            continue;
        }
        match OPERATORS.iter().find(|op| src[i..].starts_with(**op)) {
            Some(op) => {
                tokens.push(Token {
                    tok: Tok::Op(op),
                    start,
                    end: i + op.len(),
                });
                i += op.len();
            }
            None => return Err(SpanError::new(i, format!("unexpected character {ch:?}"))),
        }
    }
    tokens.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    Ok(tokens)
}

fn lex_number(src: &str, start: usize) -> Result<(Tok, usize), SpanError> {
    let bytes = src.as_bytes();
    let mut i = start;
    let is_digit_like = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if bytes[i] == b'0' && i + 1 < bytes.len() && matches!(bytes[i + 1] | 0x20, b'x' | b'o' | b'b')
    {
        i += 2;
        while i < bytes.len() && is_digit_like(bytes[i]) {
            i += 1;
        }
        let text = src[start..i].replace('_', "");
        let radix = match bytes[start + 1] | 0x20 {
            b'x' => 16,
            b'o' => 8,
            _ => 2,
        };
        return i64::from_str_radix(&text[2..], radix)
            .map(|n| (Tok::Int(n), i))
            .map_err(|_| SpanError::new(start, format!("invalid number {:?}", &src[start..i])));
    }
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
        i += 1;
    }
    let mut is_float = false;
    // `1..3` is a range, so a dot makes a fraction only when a digit follows it.
    if i + 1 < bytes.len()
        && bytes[i] == b'.'
        && bytes[i + 1].is_ascii_digit()
        && !src[start..i].contains('.')
    {
        is_float = true;
        i += 1;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
            i += 1;
        }
    }
    if i < bytes.len() && (bytes[i] | 0x20) == b'e' {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            is_float = true;
            i = j;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    if i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
        return Err(SpanError::new(
            start,
            format!("invalid number {:?}", &src[start..=i]),
        ));
    }
    let text = src[start..i].replace('_', "");
    if is_float {
        return text
            .parse::<f64>()
            .map(|f| (Tok::Float(f), i))
            .map_err(|_| SpanError::new(start, format!("invalid number {:?}", &src[start..i])));
    }
    // expr reads integers in base 10 even with a leading zero.
    text.parse::<i64>().map(|n| (Tok::Int(n), i)).map_err(|_| {
        SpanError::new(
            start,
            format!("integer literal {:?} is too large", &src[start..i]),
        )
    })
}

fn lex_string(src: &str, start: usize) -> Result<(String, usize), SpanError> {
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices().peekable();
    let unterminated = || SpanError::new(start, "literal not terminated");
    while let Some((off, c)) = chars.next() {
        let pos = start + 1 + off;
        if c == quote {
            return Ok((out, pos + 1));
        }
        if c == '\\' && quote != '`' {
            let (_, e) = chars.next().ok_or_else(unterminated)?;
            let mut hex = |n: usize| -> Result<u32, SpanError> {
                let mut v = 0u32;
                for _ in 0..n {
                    let (_, h) = chars.next().ok_or_else(unterminated)?;
                    v = v * 16
                        + h.to_digit(16)
                            .ok_or_else(|| SpanError::new(pos, "invalid escape sequence"))?;
                }
                Ok(v)
            };
            let decoded =
                match e {
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    '\\' | '\'' | '"' => e,
                    'x' => char::from_u32(hex(2)?)
                        .ok_or_else(|| SpanError::new(pos, "invalid escape"))?,
                    'u' => char::from_u32(hex(4)?)
                        .ok_or_else(|| SpanError::new(pos, "invalid escape"))?,
                    'U' => char::from_u32(hex(8)?)
                        .ok_or_else(|| SpanError::new(pos, "invalid escape"))?,
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let (_, d) = chars.next().ok_or_else(unterminated)?;
                            v = v * 8
                                + d.to_digit(8).ok_or_else(|| {
                                    SpanError::new(pos, "invalid escape sequence")
                                })?;
                        }
                        char::from_u32(v).ok_or_else(|| SpanError::new(pos, "invalid escape"))?
                    }
                    other => {
                        return Err(SpanError::new(
                            pos,
                            format!("invalid escape sequence \\{other}"),
                        ));
                    }
                };
            out.push(decoded);
            continue;
        }
        if c == '\n' && quote != '`' {
            return Err(unterminated());
        }
        out.push(c);
    }
    Err(unterminated())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnOp {
    Not,
    Neg,
    Plus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Matches,
    Contains,
    StartsWith,
    EndsWith,
    Range,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Coalesce,
}

impl BinOp {
    fn from_token(s: &str) -> Option<(BinOp, u16, bool)> {
        // (operator, precedence, right-associative)
        Some(match s {
            "||" | "or" => (BinOp::Or, 10, false),
            "&&" | "and" => (BinOp::And, 15, false),
            "==" => (BinOp::Eq, 20, false),
            "!=" => (BinOp::Ne, 20, false),
            "<" => (BinOp::Lt, 20, false),
            "<=" => (BinOp::Le, 20, false),
            ">" => (BinOp::Gt, 20, false),
            ">=" => (BinOp::Ge, 20, false),
            "in" => (BinOp::In, 20, false),
            "matches" => (BinOp::Matches, 20, false),
            "contains" => (BinOp::Contains, 20, false),
            "startsWith" => (BinOp::StartsWith, 20, false),
            "endsWith" => (BinOp::EndsWith, 20, false),
            ".." => (BinOp::Range, 25, false),
            "+" => (BinOp::Add, 30, false),
            "-" => (BinOp::Sub, 30, false),
            "*" => (BinOp::Mul, 60, false),
            "/" => (BinOp::Div, 60, false),
            "%" => (BinOp::Mod, 60, false),
            "**" | "^" => (BinOp::Pow, 100, true),
            "??" => (BinOp::Coalesce, 500, false),
            _ => return None,
        })
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Matches => "matches",
            BinOp::Contains => "contains",
            BinOp::StartsWith => "startsWith",
            BinOp::EndsWith => "endsWith",
            BinOp::Range => "..",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
            BinOp::Coalesce => "??",
        }
    }
}

/// `!`/`not` bind looser than arithmetic (`!a + b` is an error, `not a in b` is `not (a in b)`
/// only through `not in`), `-`/`+` tighter.
const NOT_PRECEDENCE: u16 = 50;
const SIGN_PRECEDENCE: u16 = 90;

#[derive(Clone, Debug)]
pub(crate) struct Expr {
    pub(crate) node: Node,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    Array(Vec<Expr>),
    /// Keys are string literals, or any expression in parentheses (`{(k): v}`).
    Map(Vec<(Expr, Expr)>),
    Unary(UnOp, Box<Expr>),
    Binary {
        op: BinOp,
        /// Offset of the operator, where errors about it point.
        at: usize,
        negate: bool,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `cond ? a : b`; `a` is `None` for `cond ?: b`, which yields `cond` itself when true.
    Cond(Box<Expr>, Option<Box<Expr>>, Box<Expr>),
    Call(String, Vec<Expr>),
    /// `#`, `#index`, `#acc` or the implicit element of `.field` inside a predicate.
    Pointer(Option<String>),
    /// A predicate argument (`map(xs, # * 2)`), evaluated once per element.
    Predicate(Box<Expr>),
    /// `let name = value; body`.
    Let(String, Box<Expr>, Box<Expr>),
    /// `a; b; c`: each is evaluated, the last is the result.
    Seq(Vec<Expr>),
    /// A postfix chain; one nil reached through `?.` ends the whole chain with nil.
    Chain(Box<Expr>, Vec<Link>),
}

#[derive(Clone, Debug)]
pub(crate) struct Link {
    pub(crate) kind: LinkKind,
    pub(crate) optional: bool,
    pub(crate) start: usize,
}

#[derive(Clone, Debug)]
pub(crate) enum LinkKind {
    Member(String),
    Index(Expr),
    Slice(Option<Expr>, Option<Expr>),
    /// `.name(args…)`: only the methods a context provides ([`crate::expressions::Functions::method`]).
    Method(String, Vec<Expr>),
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// How many predicates enclose the cursor; `#` and `.field` are valid only inside one.
    depth: usize,
}

/// expr's builtins whose arguments include a predicate: (name, number of arguments before the
/// predicate is the first, whether the predicate is optional, whether a trailing expression
/// may follow it).
const PREDICATES: &[(&str, bool, bool)] = &[
    ("all", false, false),
    ("none", false, false),
    ("any", false, false),
    ("one", false, false),
    ("filter", false, false),
    ("map", false, false),
    ("count", true, false),
    ("sum", true, false),
    ("find", false, false),
    ("findIndex", false, false),
    ("findLast", false, false),
    ("findLastIndex", false, false),
    ("groupBy", false, false),
    ("sortBy", false, true),
    ("reduce", false, true),
];

/// Parses one expression.
pub(crate) fn parse(src: &str) -> Result<Expr, SpanError> {
    let tokens = lex(src)?;
    if matches!(tokens.first().map(|t| &t.tok), Some(Tok::Eof)) {
        return Err(SpanError::new(0, "empty expression"));
    }
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = p.sequence()?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(SpanError::new(
            t.start,
            format!("unexpected token {}", describe(&t.tok)),
        ));
    }
    Ok(expr)
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Int(n) => format!("number {n}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Ident(s) => format!("{s:?}"),
        Tok::Op(o) => format!("{o:?}"),
        Tok::Eof => "end of expression".to_string(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.pos.min(last)]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[(self.pos + n).min(last)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(&self.peek().tok, Tok::Op(o) if *o == op)
    }

    fn expect(&mut self, op: &str) -> Result<Token, SpanError> {
        if self.is_op(op) {
            return Ok(self.next());
        }
        let t = self.peek();
        Err(SpanError::new(
            t.start,
            format!("expected {op:?}, found {}", describe(&t.tok)),
        ))
    }

    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(0, |t| t.end)
    }

    /// The binary operator at the cursor, as `(op, precedence, right_assoc, negated, tokens)`.
    fn binary_op(&self) -> Option<(BinOp, u16, bool, bool, usize)> {
        let word = |t: &Tok| match t {
            Tok::Op(o) => Some((*o).to_string()),
            Tok::Ident(s) => Some(s.clone()),
            _ => None,
        };
        let first = word(&self.peek().tok)?;
        if first == "not" {
            let second = word(self.peek_at(1))?;
            return match BinOp::from_token(&second) {
                Some((op, prec, right))
                    if matches!(
                        op,
                        BinOp::In
                            | BinOp::Matches
                            | BinOp::Contains
                            | BinOp::StartsWith
                            | BinOp::EndsWith
                    ) =>
                {
                    Some((op, prec, right, true, 2))
                }
                _ => None,
            };
        }
        // Identifiers are operators only when they are operator words.
        if matches!(self.peek().tok, Tok::Ident(_))
            && !matches!(
                first.as_str(),
                "and" | "or" | "in" | "matches" | "contains" | "startsWith" | "endsWith"
            )
        {
            return None;
        }
        BinOp::from_token(&first).map(|(op, prec, right)| (op, prec, right, false, 1))
    }

    /// `a; b; c` (a trailing `;` is allowed), as expr's `parseSequenceExpression`.
    fn sequence(&mut self) -> Result<Expr, SpanError> {
        let first = self.expression(0)?;
        let mut items = vec![first];
        while self.is_op(";") {
            self.next();
            if matches!(self.peek().tok, Tok::Eof) {
                break;
            }
            items.push(self.expression(0)?);
        }
        if items.len() == 1 {
            return Ok(items.remove(0));
        }
        let (start, end) = (items[0].start, self.prev_end());
        Ok(Expr {
            node: Node::Seq(items),
            start,
            end,
        })
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s == w)
    }

    fn expect_word(&mut self, w: &str) -> Result<Token, SpanError> {
        if self.is_word(w) {
            return Ok(self.next());
        }
        let t = self.peek();
        Err(SpanError::new(
            t.start,
            format!("expected {w:?}, found {}", describe(&t.tok)),
        ))
    }

    /// `let name = value; body`.
    fn let_expression(&mut self) -> Result<Expr, SpanError> {
        let start = self.next().start;
        let name_tok = self.next();
        let Tok::Ident(name) = name_tok.tok else {
            return Err(SpanError::new(
                name_tok.start,
                format!(
                    "expected a variable name, found {}",
                    describe(&name_tok.tok)
                ),
            ));
        };
        self.expect("=")?;
        let value = self.expression(0)?;
        self.expect(";")?;
        let body = self.sequence()?;
        Ok(Expr {
            node: Node::Let(name, Box::new(value), Box::new(body)),
            start,
            end: self.prev_end(),
        })
    }

    /// `if cond { a } else { b }`, also `else if …`.
    fn if_expression(&mut self) -> Result<Expr, SpanError> {
        let start = self.next().start;
        let cond = self.expression(0)?;
        self.expect("{")?;
        let then = self.sequence()?;
        self.expect("}")?;
        self.expect_word("else")?;
        let otherwise = if self.is_word("if") {
            self.if_expression()?
        } else {
            self.expect("{")?;
            let e = self.sequence()?;
            self.expect("}")?;
            e
        };
        Ok(Expr {
            node: Node::Cond(Box::new(cond), Some(Box::new(then)), Box::new(otherwise)),
            start,
            end: self.prev_end(),
        })
    }

    fn expression(&mut self, min_prec: u16) -> Result<Expr, SpanError> {
        if min_prec == 0 && self.is_word("let") {
            return self.let_expression();
        }
        if min_prec == 0 && self.is_word("if") {
            return self.if_expression();
        }
        let mut left = self.primary()?;
        let mut prev: Option<BinOp> = None;
        // The right side of the last comparison: `a < b < c` means `a < b && b < c`.
        let mut compared: Option<Expr> = None;
        loop {
            // `x | f(a)` is `f(x, a)`; a pipe binds loosest of all.
            if min_prec == 0 && self.is_op("|") {
                self.next();
                let t = self.next();
                let Tok::Ident(name) = t.tok else {
                    return Err(SpanError::new(t.start, "expected a function call after |"));
                };
                let start = left.start;
                let args = self.call_arguments(&name, vec![left])?;
                left = Expr {
                    node: Node::Call(name, args),
                    start,
                    end: self.prev_end(),
                };
                prev = None;
                compared = None;
                continue;
            }
            let Some((op, prec, right_assoc, negate, ntok)) = self.binary_op() else {
                break;
            };
            if prec < min_prec {
                break;
            }
            let at = self.peek().start;
            if prev == Some(BinOp::Coalesce) && op != BinOp::Coalesce {
                return Err(SpanError::new(
                    at,
                    format!(
                        "operator ({}) and coalesce expressions (??) cannot be mixed; wrap either in parentheses",
                        op.symbol()
                    ),
                ));
            }
            for _ in 0..ntok {
                self.next();
            }
            let right = self.expression(if right_assoc { prec } else { prec + 1 })?;
            // Only `<`, `>`, `<=`, `>=` chain (expr's `parseComparison`): `1 < 2 < 3 == true`
            // is `(1 < 2 && 2 < 3) == true`.
            let is_comparison = matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge);
            let binary = |left: Expr, right: Expr| {
                let (start, end) = (left.start, right.end);
                Expr {
                    node: Node::Binary {
                        op,
                        at,
                        negate,
                        left: Box::new(left),
                        right: Box::new(right),
                    },
                    start,
                    end,
                }
            };
            left = match compared.take() {
                Some(middle) if is_comparison => {
                    let cmp = binary(middle, right.clone());
                    let (start, end) = (left.start, cmp.end);
                    Expr {
                        node: Node::Binary {
                            op: BinOp::And,
                            at,
                            negate: false,
                            left: Box::new(left),
                            right: Box::new(cmp),
                        },
                        start,
                        end,
                    }
                }
                _ => binary(left, right.clone()),
            };
            compared = is_comparison.then_some(right);
            prev = Some(op);
        }
        if min_prec == 0 {
            left = self.conditional(left)?;
        }
        Ok(left)
    }

    fn conditional(&mut self, mut cond: Expr) -> Result<Expr, SpanError> {
        while self.is_op("?") {
            self.next();
            let then = if self.is_op(":") {
                self.next();
                None
            } else {
                let then = self.expression(0)?;
                self.expect(":")?;
                Some(Box::new(then))
            };
            let otherwise = self.expression(0)?;
            let (start, end) = (cond.start, otherwise.end);
            cond = Expr {
                node: Node::Cond(Box::new(cond), then, Box::new(otherwise)),
                start,
                end,
            };
        }
        Ok(cond)
    }

    fn primary(&mut self) -> Result<Expr, SpanError> {
        let t = self.peek().clone();
        let unary = match &t.tok {
            Tok::Op("!") => Some(UnOp::Not),
            Tok::Ident(s) if s == "not" => Some(UnOp::Not),
            Tok::Op("-") => Some(UnOp::Neg),
            Tok::Op("+") => Some(UnOp::Plus),
            _ => None,
        };
        if let Some(op) = unary {
            self.next();
            let prec = if op == UnOp::Not {
                NOT_PRECEDENCE
            } else {
                SIGN_PRECEDENCE
            };
            let operand = self.expression(prec)?;
            let end = operand.end;
            let e = Expr {
                node: Node::Unary(op, Box::new(operand)),
                start: t.start,
                end,
            };
            return self.postfix(e);
        }
        if t.tok == Tok::Op("(") {
            self.next();
            let mut inner = self.sequence()?;
            let close = self.expect(")")?;
            inner.start = t.start;
            inner.end = close.end;
            return self.postfix(inner);
        }
        if self.depth > 0 && (t.tok == Tok::Op("#") || t.tok == Tok::Op(".")) {
            let mut name = None;
            let mut end = t.start;
            if t.tok == Tok::Op("#") {
                self.next();
                end = t.end;
                // `# in xs`: operator words are not pointer names.
                if let Tok::Ident(n) = &self.peek().tok
                    && !matches!(
                        n.as_str(),
                        "in" | "and"
                            | "or"
                            | "not"
                            | "matches"
                            | "contains"
                            | "startsWith"
                            | "endsWith"
                    )
                {
                    name = Some(n.clone());
                    end = self.next().end;
                }
            }
            // For `.field` the dot stays for `postfix` to read as a member access.
            let e = Expr {
                node: Node::Pointer(name),
                start: t.start,
                end,
            };
            return self.postfix(e);
        }
        let e = self.secondary()?;
        self.postfix(e)
    }

    fn secondary(&mut self) -> Result<Expr, SpanError> {
        let t = self.next();
        let node = match t.tok {
            Tok::Int(n) => Node::Int(n),
            Tok::Float(f) => Node::Float(f),
            Tok::Str(s) => Node::Str(s),
            Tok::Ident(name) => match name.as_str() {
                "true" => Node::Bool(true),
                "false" => Node::Bool(false),
                "nil" => Node::Nil,
                _ if self.is_op("(") => {
                    let args = self.call_arguments(&name, Vec::new())?;
                    Node::Call(name, args)
                }
                _ => Node::Ident(name),
            },
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.is_op("]") {
                    if !items.is_empty() && self.is_op(",") {
                        // a trailing comma
                        self.next();
                        if self.is_op("]") {
                            break;
                        }
                    }
                    items.push(self.expression(0)?);
                    if !self.is_op("]") && !self.is_op(",") {
                        self.expect(",")?;
                    }
                }
                self.next();
                Node::Array(items)
            }
            Tok::Op("{") => {
                let mut entries = Vec::new();
                while !self.is_op("}") {
                    if !entries.is_empty() {
                        self.expect(",")?;
                        if self.is_op("}") {
                            break;
                        }
                    }
                    let key = if self.is_op("(") {
                        self.primary()?
                    } else {
                        let k = self.next();
                        let text = match k.tok {
                            Tok::Ident(s) | Tok::Str(s) => s,
                            Tok::Int(_) | Tok::Float(_) => self.src[k.start..k.end].to_string(),
                            other => {
                                return Err(SpanError::new(
                                    k.start,
                                    format!(
                                        "a map key must be a quoted string, a number, an identifier, or an expression in parentheses, found {}",
                                        describe(&other)
                                    ),
                                ));
                            }
                        };
                        Expr {
                            node: Node::Str(text),
                            start: k.start,
                            end: k.end,
                        }
                    };
                    self.expect(":")?;
                    entries.push((key, self.expression(0)?));
                }
                self.next();
                Node::Map(entries)
            }
            Tok::Op("#") | Tok::Op(".") => {
                return Err(SpanError::new(
                    t.start,
                    "cannot use pointer accessor outside predicate",
                ));
            }
            other => {
                return Err(SpanError::new(
                    t.start,
                    format!("unexpected token {}", describe(&other)),
                ));
            }
        };
        Ok(Expr {
            node,
            start: t.start,
            end: self.prev_end(),
        })
    }

    /// The arguments of a call to `name`; `args` holds the left side of a pipe. A predicate
    /// builtin's closure argument becomes a [`Node::Predicate`].
    fn call_arguments(&mut self, name: &str, mut args: Vec<Expr>) -> Result<Vec<Expr>, SpanError> {
        let Some(&(_, optional, trailing)) = PREDICATES.iter().find(|(n, _, _)| *n == name) else {
            args.extend(self.arguments()?);
            return Ok(args);
        };
        self.expect("(")?;
        // Argument kinds: the collection, the predicate, an optional trailing expression.
        let piped = args.len();
        let mut i = piped;
        while !self.is_op(")") {
            if i > piped {
                self.expect(",")?;
                if self.is_op(")") {
                    break;
                }
            }
            let e = match i {
                0 => self.expression(0)?,
                1 => self.predicate()?,
                2 if trailing => self.expression(0)?,
                _ => {
                    let t = self.peek();
                    return Err(SpanError::new(
                        t.start,
                        format!("too many arguments to {name}"),
                    ));
                }
            };
            args.push(e);
            i += 1;
        }
        let close = self.expect(")")?;
        if args.len() < 2 && !optional {
            return Err(SpanError::new(
                close.start,
                format!("{name} expects a predicate as its second argument"),
            ));
        }
        Ok(args)
    }

    /// A predicate: `# > 1`, `.field`, or `{ … }` with a sequence inside.
    fn predicate(&mut self) -> Result<Expr, SpanError> {
        let start = self.peek().start;
        let braces = self.is_op("{");
        if braces {
            self.next();
        }
        self.depth += 1;
        let body = if braces {
            self.sequence()
        } else {
            self.expression(0)
        };
        self.depth -= 1;
        let body = body?;
        if braces {
            self.expect("}")?;
        } else if self.is_op(";") {
            let t = self.peek();
            return Err(SpanError::new(
                t.start,
                "wrap predicate with brackets { and }",
            ));
        }
        Ok(Expr {
            node: Node::Predicate(Box::new(body)),
            start,
            end: self.prev_end(),
        })
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, SpanError> {
        self.expect("(")?;
        let mut args = Vec::new();
        while !self.is_op(")") {
            if !args.is_empty() {
                self.expect(",")?;
                if self.is_op(")") {
                    break;
                }
            }
            args.push(self.expression(0)?);
        }
        self.next();
        Ok(args)
    }

    fn postfix(&mut self, base: Expr) -> Result<Expr, SpanError> {
        let mut links = Vec::new();
        loop {
            let t = self.peek().clone();
            let optional = t.tok == Tok::Op("?.");
            if t.tok == Tok::Op(".") || optional {
                self.next();
                if optional && self.is_op("[") {
                    self.next();
                    links.push(self.index_link(t.start, true)?);
                    continue;
                }
                let name_tok = self.next();
                let name = match name_tok.tok {
                    Tok::Ident(s) => s,
                    other => {
                        return Err(SpanError::new(
                            name_tok.start,
                            format!("expected a name after \".\", found {}", describe(&other)),
                        ));
                    }
                };
                let kind = if self.is_op("(") {
                    LinkKind::Method(name, self.arguments()?)
                } else {
                    LinkKind::Member(name)
                };
                links.push(Link {
                    kind,
                    optional,
                    start: t.start,
                });
            } else if t.tok == Tok::Op("[") {
                self.next();
                links.push(self.index_link(t.start, false)?);
            } else {
                break;
            }
        }
        if links.is_empty() {
            return Ok(base);
        }
        let (start, end) = (base.start, self.prev_end());
        Ok(Expr {
            node: Node::Chain(Box::new(base), links),
            start,
            end,
        })
    }

    /// After `[`: an index `[e]` or a slice `[a:b]`.
    fn index_link(&mut self, start: usize, optional: bool) -> Result<Link, SpanError> {
        let from = if self.is_op(":") {
            None
        } else {
            Some(self.expression(0)?)
        };
        let kind = if self.is_op(":") {
            self.next();
            let to = if self.is_op("]") {
                None
            } else {
                Some(self.expression(0)?)
            };
            LinkKind::Slice(from, to)
        } else {
            match from {
                Some(e) => LinkKind::Index(e),
                None => {
                    let at = self.peek().start;
                    return Err(SpanError::new(at, "expected an index"));
                }
            }
        };
        self.expect("]")?;
        Ok(Link {
            kind,
            optional,
            start,
        })
    }
}
