//! Label and field selectors, parsed from the `labelSelector` and `fieldSelector` query
//! parameters exactly as the apiserver parses them, with its error messages.
//!
//! Sources (apimachinery v0.32.13): `pkg/labels/selector.go` (lexer, parser, `Requirement`),
//! `pkg/fields/selector.go` (terms, escaping), `pkg/runtime/conversion.go`
//! (`DefaultMetaV1FieldSelectorConversion`) and kubernetes' `pkg/apis/core/v1/conversion.go`
//! (the field labels each core kind supports). The apiserver answers every error here with
//! 400 BadRequest and the message unchanged (`errors.NewBadRequest(err.Error())` in
//! `endpoints/handlers/get.go`).
//!
//! The caller hands in the query value already percent- and `+`-decoded.

use std::collections::BTreeMap;
use std::fmt;

use crate::field::{BadValue, FieldError, aggregate_message};
use crate::validation::{is_qualified_name, is_valid_label_value};

/// Why a selector was refused. `Display` is the apiserver's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector does not parse (`labels.Parse`).
    #[error("{0}")]
    Label(String),
    /// The field selector does not parse (`fields.ParseSelector`).
    #[error("{0}")]
    Field(String),
    /// A field the kind registers no conversion for (kubernetes' per-kind conversion funcs).
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    /// A field of a kind without its own conversion func (`DefaultMetaV1FieldSelectorConversion`).
    #[error("{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"", crate::field::go_quote(.0))]
    UnknownField(String),
}

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// A label selector operator (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOperator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement of a label selector: a key, an operator and its values, sorted and
/// without duplicates as Kubernetes keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub operator: LabelOperator,
    pub values: Vec<String>,
}

impl LabelRequirement {
    /// `Requirement.Matches`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let has_value = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            LabelOperator::In | LabelOperator::Equals | LabelOperator::DoubleEquals => {
                labels.get(&self.key).is_some_and(|v| has_value(v))
            }
            LabelOperator::NotIn | LabelOperator::NotEquals => labels.get(&self.key).is_none_or(|v| !has_value(v)),
            LabelOperator::Exists => labels.contains_key(&self.key),
            LabelOperator::DoesNotExist => !labels.contains_key(&self.key),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let Some(Ok(have)) = labels.get(&self.key).map(|v| v.parse::<i64>()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == LabelOperator::GreaterThan { have > want } else { have < want }
            }
        }
    }
}

impl fmt::Display for LabelRequirement {
    /// `Requirement.String`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == LabelOperator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            LabelOperator::Exists | LabelOperator::DoesNotExist => return Ok(()),
            LabelOperator::Equals => "=",
            LabelOperator::DoubleEquals => "==",
            LabelOperator::NotEquals => "!=",
            LabelOperator::In => " in ",
            LabelOperator::NotIn => " notin ",
            LabelOperator::GreaterThan => ">",
            LabelOperator::LessThan => "<",
        };
        f.write_str(op)?;
        let set = matches!(self.operator, LabelOperator::In | LabelOperator::NotIn);
        if set {
            f.write_str("(")?;
        }
        f.write_str(&self.values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// `labels.Parse`: the empty string selects everything.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser { items: lex(selector.as_bytes()), position: 0 };
        let mut requirements = parser.parse().map_err(SelectorError::Label)?;
        // Sorted to make parsing deterministic (sort.Sort(ByKey(items))).
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether the selector restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// `Selector.Matches`: every requirement holds.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Go's `Lexer`, byte for byte. Like Go it reads a NUL byte as the end of input (`read`
/// returns 0 there), so `a=b\0,c` selects only `a=b`. Tokens split only at ASCII bytes, so
/// every literal is valid UTF-8.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        if self.pos < self.s.len() {
            self.pos += 1;
            self.s[self.pos - 1]
        } else {
            0
        }
    }

    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn literal(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut end = start;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
            end = self.pos;
        }
        let buffer = &self.s[start..end];
        (keyword(buffer).unwrap_or(Token::Identifier), Self::literal(buffer))
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut last: Option<(Token, String)> = None;
        let mut buffer = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special_symbol(ch) {
                self.unread();
                break;
            }
            buffer.push(ch);
            if let Some(token) = keyword(&buffer) {
                last = Some((token, Self::literal(&buffer)));
            } else if last.is_some() {
                self.unread();
                break;
            }
        }
        last.unwrap_or_else(|| (Token::Error, format!("error expected: keyword found '{}'", Self::literal(&buffer))))
    }

    fn lex(&mut self) -> (Token, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            (Token::EndOfString, String::new())
        } else if is_special_symbol(ch) {
            self.unread();
            self.scan_special_symbol()
        } else {
            self.unread();
            self.scan_id_or_keyword()
        }
    }
}

fn lex(s: &[u8]) -> Vec<(Token, String)> {
    let mut lexer = Lexer { s, pos: 0 };
    let mut items = Vec::new();
    loop {
        let item = lexer.lex();
        let end = item.0 == Token::EndOfString;
        items.push(item);
        if end {
            return items;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// Go's `Parser`, with its messages.
struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

/// The operators a binary requirement accepts, in the order Go lists them.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn token_in(context: Context, token: Token) -> Token {
        match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            (_, t) => t,
        }
    }

    /// The item at `i`; past the end it is the final end-of-string item (Go never reads past
    /// it either, this only keeps a malformed selector from panicking).
    fn item(&self, i: usize) -> &(Token, String) {
        &self.items[i.min(self.items.len() - 1)]
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        let (token, literal) = self.item(self.position);
        (Self::token_in(context, *token), literal.clone())
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        self.position += 1;
        let (token, literal) = self.item(self.position - 1);
        (Self::token_in(context, *token), literal.clone())
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!("found '{l2}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!("found '{literal}', expected: !, identifier, or 'end of string'"));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<LabelRequirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (LabelOperator::Exists | LabelOperator::DoesNotExist)) = operator {
            return new_requirement(key, op, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, operator, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<LabelOperator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(LabelOperator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        // Go validates the key against a nil field path, which prints as "<nil>".
        let key_errs = is_qualified_name(&literal);
        if !key_errs.is_empty() {
            return Err(FieldError::invalid("<nil>", literal.as_str(), key_errs.join("; ")).to_string());
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Token::EndOfString || next == Token::Comma) && operator.is_none() {
            operator = Some(LabelOperator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<LabelOperator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => LabelOperator::In,
            Token::Equals => LabelOperator::Equals,
            Token::DoubleEquals => LabelOperator::DoubleEquals,
            Token::GreaterThan => LabelOperator::GreaterThan,
            Token::LessThan => LabelOperator::LessThan,
            Token::NotIn => LabelOperator::NotIn,
            Token::NotEquals => LabelOperator::NotEquals,
            _ => return Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        })
    }

    /// `parseValues`: `(a,b)`, where empty entries mean the empty value.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (token, _) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    // Go reports the literal seen before the list, not the offending token.
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{literal}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        let insert = |values: &mut Vec<String>, v: String| {
            if !values.contains(&v) {
                values.push(v);
            }
        };
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    insert(&mut values, literal);
                    let (t2, l2) = self.lookahead(Context::Values);
                    match t2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        insert(&mut values, String::new());
                    }
                    let (t2, _) = self.lookahead(Context::Values);
                    if t2 == Token::ClosedPar {
                        insert(&mut values, String::new());
                        return Ok(values);
                    }
                    if t2 == Token::Comma {
                        self.consume(Context::Values);
                        insert(&mut values, String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (token, _) = self.lookahead(Context::Values);
        if token == Token::EndOfString || token == Token::Comma {
            return Ok(vec![String::new()]);
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(vec![literal])
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

/// `NewRequirement` as the parser calls it (a nil field path): values are checked as label
/// values, and for `gt`/`lt` as integers. Several problems print as Kubernetes' aggregate.
fn new_requirement(key: String, operator: LabelOperator, values: Vec<String>) -> Result<LabelRequirement, String> {
    // The parser collects values in a string set: sorted, without duplicates.
    let mut values = values;
    values.sort();
    values.dedup();
    let mut errs = Vec::new();
    if matches!(operator, LabelOperator::GreaterThan | LabelOperator::LessThan) {
        for (i, v) in values.iter().enumerate() {
            if v.parse::<i64>().is_err() {
                errs.push(FieldError::invalid(
                    format!("values[{i}]"),
                    v.as_str(),
                    "for 'Gt', 'Lt' operators, the value must be an integer",
                ));
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let msgs = is_valid_label_value(v);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(format!("values[{i}][{key}]"), BadValue::Str(v.clone()), msgs.join("; ")));
        }
    }
    if errs.is_empty() { Ok(LabelRequirement { key, operator, values }) } else { Err(aggregate_message(&errs)) }
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// A field selector operator. `==` parses to [`FieldOperator::Equals`], as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    NotEquals,
}

/// One term of a field selector, its value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

/// A parsed field selector: the AND of its terms, in Kubernetes' order (terms sorted as
/// strings before parsing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Field labels of a Secret (`AddFieldLabelConversionsForSecret`).
pub const SECRET_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "type"];
/// Field labels of a Namespace (`AddFieldLabelConversionsForNamespace`): no `metadata.namespace`.
pub const NAMESPACE_FIELDS: &[&str] = &["metadata.name", "status.phase"];

impl FieldSelector {
    /// `fields.ParseSelector`: the empty string selects everything.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(selector);
        parts.sort();
        let mut requirements = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((field, operator, rhs)) = split_term(part) else {
                return Err(SelectorError::Field(format!("invalid selector: '{selector}'; can't understand '{part}'")));
            };
            let value = unescape_value(rhs).map_err(SelectorError::Field)?;
            requirements.push(FieldRequirement { field: field.to_string(), operator, value });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// `Selector.Matches`: `get` returns a field's value; a field the object lacks reads as
    /// the empty string, as Kubernetes' `fields.Set.Get` does.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let have = get(&r.field).unwrap_or_default();
            match r.operator {
                FieldOperator::Equals => have == r.value,
                FieldOperator::NotEquals => have != r.value,
            }
        })
    }

    /// `RequiresExactMatch`: the value an `=` term requires of `field`, if any.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// The check a kind with its own field-label conversion func makes (every core kind that
    /// has selectable fields beyond metadata): the first term, in selector order, whose field is
    /// not in `supported` is refused with `field label not supported: <field>`.
    /// Use [`SECRET_FIELDS`] and [`NAMESPACE_FIELDS`].
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), SelectorError> {
        match self.requirements.iter().find(|r| !supported.contains(&r.field.as_str())) {
            Some(r) => Err(SelectorError::UnsupportedField(r.field.clone())),
            None => Ok(()),
        }
    }

    /// The check for kinds without a conversion func of their own (ServiceAccounts, RBAC):
    /// only `metadata.name` and `metadata.namespace`, refused with Kubernetes' default message.
    pub fn check_metadata_only(&self) -> Result<(), SelectorError> {
        match self.requirements.iter().find(|r| r.field != "metadata.name" && r.field != "metadata.namespace") {
            Some(r) => Err(SelectorError::UnknownField(r.field.clone())),
            None => Ok(()),
        }
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let op = if r.operator == FieldOperator::Equals { "=" } else { "!=" };
                format!("{}{op}{}", r.field, escape_value(&r.value))
            })
            .collect();
        f.write_str(&terms.join(","))
    }
}

/// `EscapeValue`: `\`, `,` and `=` get a backslash.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `UnescapeValue`, with its messages. Go prints an unescaped rune with `%v`, that is as its
/// code point number (`61` for `=`).
fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!("invalid field selector: invalid escape sequence: \\{c}"));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!("invalid field selector: unescaped character in value: {}", c as u32));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// `splitTerms`: split at commas not escaped by a backslash (the backslash stays).
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// `splitTerm`: the first `!=`, `==` or `=` (tried in that order at each position) splits the
/// term; the field part supports no escaping.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in
            [("!=", FieldOperator::NotEquals), ("==", FieldOperator::Equals), ("=", FieldOperator::Equals)]
        {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, rhs));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors_that_parse_and_restring() {
        // selector_test.go TestSelectorParse: good strings restring without spaces.
        for s in ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5"] {
            let parsed = LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parsed.to_string(), s.replace(' ', ""), "{s}");
        }
        // kubectl-wire.md §3.2: `-l 'k in (v,w),!x'` arrives decoded as below.
        let s = LabelSelector::parse("k in (w,v,v),!x").unwrap();
        assert_eq!(s.to_string(), "k in (v,w),!x");
        let s = LabelSelector::parse("env notin (prod),tier==db,a").unwrap();
        assert_eq!(s.to_string(), "a,env notin (prod),tier==db");
        assert_eq!(LabelSelector::parse("x in ()").unwrap().requirements()[0].values, vec![String::new()]);
        assert_eq!(
            LabelSelector::parse("x in (,a,)").unwrap().requirements()[0].values,
            vec!["".to_string(), "a".to_string()]
        );
        // `in` and `notin` are plain words as values and keys of exact matches.
        assert!(LabelSelector::parse("notin=in").unwrap().matches(&labels(&[("notin", "in")])));
    }

    #[test]
    fn label_selector_errors() {
        // Messages from selector.go; the "<nil>" path is Go's nil *field.Path.
        let cases: &[(&str, String)] = &[
            // The lexer reads "a||y" as one identifier, which is no label value.
            ("x=a||y=b", format!("unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {LABEL_VALUE_MSG}")),
            ("x==a==b", "found '==', expected: ',' or 'end of string'".into()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".into()),
            (
                "x<a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
            ),
            ("a b", format!("unable to parse requirement: found 'b', expected: {BINARY_OPERATORS}")),
            ("x in a", "unable to parse requirement: found 'a' expected: '('".into()),
            ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'".into()),
            ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".into()),
            ("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier".into()),
            ("x=(", "unable to parse requirement: found '(', expected: identifier".into()),
            ("x,", "found '', expected: identifier after ','".into()),
            (",x", "found ',', expected: !, identifier, or 'end of string'".into()),
            ("!", "unable to parse requirement: found '', expected: identifier".into()),
            ("x y", format!("unable to parse requirement: found 'y', expected: {BINARY_OPERATORS}")),
            ("Bad Key=x", format!("unable to parse requirement: found 'Key', expected: {BINARY_OPERATORS}")),
            ("-x=y", format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {NAME_PART_MSG}")),
            ("a/b/c", String::from("unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")),
            (
                "/x",
                "unable to parse requirement: <nil>: Invalid value: \"/x\": prefix part must be non-empty".into(),
            ),
            ("x=-v", format!("unable to parse requirement: values[0][x]: Invalid value: \"-v\": {LABEL_VALUE_MSG}")),
            (
                "x in (-a,-b)",
                format!(
                    "unable to parse requirement: [values[0][x]: Invalid value: \"-a\": {LABEL_VALUE_MSG}, values[1][x]: Invalid value: \"-b\": {LABEL_VALUE_MSG}]"
                ),
            ),
            ("x>1!", "found '!', expected: ',' or 'end of string'".into()),
            (
                "k\u{441}=v",
                format!("unable to parse requirement: <nil>: Invalid value: \"k\u{441}\": {NAME_PART_MSG}"),
            ),
        ];
        for (s, want) in cases {
            let err = LabelSelector::parse(s).expect_err(s);
            assert_eq!(err.to_string(), *want, "{s:?}");
        }
        // A 64-character name part joins its messages with "; ".
        let long = "k".repeat(64);
        assert_eq!(
            LabelSelector::parse(&long).unwrap_err().to_string(),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 characters"
            )
        );
    }

    #[test]
    fn label_selector_errors_when_the_value_is_both_invalid_and_not_a_number() {
        // NewRequirement reports the integer check and the label-value check.
        let err = LabelSelector::parse("x>-a").unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "unable to parse requirement: [values[0]: Invalid value: \"-a\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: \"-a\": {LABEL_VALUE_MSG}]"
            )
        );
    }

    #[test]
    fn label_selector_matching() {
        // selector_test.go TestSelectorMatches and TestSetMatches.
        let l = labels(&[("x", "y"), ("z", "w"), ("n", "5")]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("x=y", true),
            ("x==y", true),
            ("x=y,z=w", true),
            ("x!=y", false),
            ("x!=a", true),
            ("absent!=a", true),
            ("x", true),
            ("!x", false),
            ("!absent", true),
            ("absent", false),
            ("x in (y,a)", true),
            ("x in (a,b)", false),
            ("absent in (a)", false),
            ("x notin (y)", false),
            ("absent notin (y)", true),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("x>1", false),
            ("absent<1", false),
            ("x=", false),
        ];
        for (s, want) in cases {
            assert_eq!(LabelSelector::parse(s).unwrap().matches(&l), *want, "{s}");
        }
        assert!(LabelSelector::parse("e=").unwrap().matches(&labels(&[("e", "")])));
        // A negative bound is no label value, so Kubernetes refuses it before comparing.
        assert!(LabelSelector::parse("n>-1").is_err());
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(!LabelSelector::parse("x").unwrap().is_empty());
    }

    #[test]
    fn label_lexer_details() {
        // TestLexer: longest special-symbol token wins; whitespace separates identifiers.
        assert_eq!(
            LabelSelector::parse("x!==a").unwrap_err().to_string(),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert!(LabelSelector::parse("\tx\n=\ry ").is_ok());
        // Go's lexer reads a NUL byte as 0, its end-of-input mark: where a token starts it ends
        // the input; inside a token it is swallowed and ends the token.
        assert_eq!(
            LabelSelector::parse("a=b, \0c=d").unwrap_err().to_string(),
            "found '', expected: identifier after ','"
        );
        assert_eq!(LabelSelector::parse("a=b,\0c=d").unwrap().to_string(), "a=b,c=d");
        assert_eq!(LabelSelector::parse("a=b\0,c=d").unwrap().to_string(), "a=b,c=d");
    }

    #[test]
    fn field_selectors_parse_as_kubernetes() {
        // fields/selector_test.go TestSelectorParse: good strings restring unchanged.
        for s in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
            assert_eq!(FieldSelector::parse(s).unwrap().to_string(), s, "{s}");
        }
        let s = FieldSelector::parse("type==kubernetes.io/tls,metadata.name!=db").unwrap();
        assert_eq!(
            s.requirements(),
            &[
                FieldRequirement {
                    field: "metadata.name".into(),
                    operator: FieldOperator::NotEquals,
                    value: "db".into()
                },
                FieldRequirement {
                    field: "type".into(),
                    operator: FieldOperator::Equals,
                    value: "kubernetes.io/tls".into()
                },
            ]
        );
        let escaped = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(escaped.requirements()[0].value, r"a,b=c\d");
        assert_eq!(escaped.requires_exact_match("metadata.name"), Some(r"a,b=c\d"));
        assert!(FieldSelector::parse(",,").unwrap().is_empty());
    }

    #[test]
    fn field_selector_errors() {
        let cases: &[(&str, &str)] = &[
            ("x=a==b", "invalid field selector: unescaped character in value: 61"),
            ("x=a,b", "invalid selector: 'x=a,b'; can't understand 'b'"),
            ("x in (a)", "invalid selector: 'x in (a)'; can't understand 'x in (a)'"),
            ("x", "invalid selector: 'x'; can't understand 'x'"),
            (" ", "invalid selector: ' '; can't understand ' '"),
            (r"x=a\b", r"invalid field selector: invalid escape sequence: \b"),
            (r"x=a\", r"invalid field selector: invalid escape sequence: \"),
        ];
        for (s, want) in cases {
            assert_eq!(FieldSelector::parse(s).unwrap_err().to_string(), *want, "{s:?}");
        }
    }

    #[test]
    fn field_selector_matching_and_supported_fields() {
        let get = |f: &str| match f {
            "metadata.name" => Some("db".to_string()),
            "type" => Some("Opaque".to_string()),
            _ => None,
        };
        assert!(FieldSelector::parse("metadata.name=db,type=Opaque").unwrap().matches(get));
        assert!(!FieldSelector::parse("type!=Opaque").unwrap().matches(get));
        assert!(FieldSelector::parse("metadata.namespace=").unwrap().matches(get));
        assert!(FieldSelector::parse("").unwrap().matches(get));

        // kubernetes pkg/apis/core/v1/conversion.go.
        let s = FieldSelector::parse("type=Opaque,foo=bar,metadata.name=db").unwrap();
        assert_eq!(s.check_supported(SECRET_FIELDS).unwrap_err().to_string(), "field label not supported: foo");
        assert!(FieldSelector::parse("metadata.namespace=app").unwrap().check_supported(SECRET_FIELDS).is_ok());
        assert_eq!(
            FieldSelector::parse("metadata.namespace=app")
                .unwrap()
                .check_supported(NAMESPACE_FIELDS)
                .unwrap_err()
                .to_string(),
            "field label not supported: metadata.namespace"
        );
        assert!(FieldSelector::parse("status.phase=Active").unwrap().check_supported(NAMESPACE_FIELDS).is_ok());
        // runtime/conversion.go DefaultMetaV1FieldSelectorConversion.
        assert_eq!(
            FieldSelector::parse("spec.x=1").unwrap().check_metadata_only().unwrap_err().to_string(),
            r#""spec.x" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
    }
}
