//! The shipped queries of `queries/`, compiled into the binary so bnetl runs from any folder,
//! and the `--query FILE` override. Every statement bnetl plans only reads: one that would
//! write (DML, DDL, `COPY ... TO`, `SET`, ...) is refused before anything runs.

use std::ops::ControlFlow;
use std::path::Path;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::{Dialect, dialect_from_str};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::QueryError;

/// A named SQL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Name for messages: the file name.
    pub name: String,
    /// The SQL text.
    pub sql: String,
}

/// `queries/extract.sql`: the decoded events as they are.
pub const EXTRACT: &str = include_str!("../../queries/extract.sql");
/// `queries/transform.sql`: events with analyst-friendly derived columns.
pub const TRANSFORM: &str = include_str!("../../queries/transform.sql");
/// `queries/filtered_writes.sql`: purchase events only.
pub const FILTERED_WRITES: &str = include_str!("../../queries/filtered_writes.sql");

impl Query {
    /// The shipped query `name` unless `override_path` names a file to use instead.
    pub fn load(
        name: &str,
        shipped: &str,
        override_path: Option<&Path>,
    ) -> Result<Query, QueryError> {
        match override_path {
            None => Ok(Query {
                name: format!("{name}.sql"),
                sql: shipped.to_owned(),
            }),
            Some(path) => {
                let sql = std::fs::read_to_string(path).map_err(|source| QueryError::Read {
                    name: name.to_owned(),
                    path: path.display().to_string(),
                    source,
                })?;
                Ok(Query {
                    name: path.display().to_string(),
                    sql,
                })
            }
        }
    }

    /// Plans the statement. DataFusion's parser reads the text, comments included; a file
    /// with more than one statement is an error, and so is a statement that would write
    /// ([`QueryError::Writes`]): it is refused after planning, before anything runs (DataFusion
    /// runs DDL as soon as it plans it, so `SessionContext::sql` cannot be used).
    pub async fn plan(&self, ctx: &SessionContext) -> Result<DataFrame, QueryError> {
        let invalid = |hint: String, source| QueryError::Plan {
            name: self.name.clone(),
            hint,
            source,
        };
        // Parsed once, as `create_logical_plan` would, so that the statement is looked at
        // before it is planned.
        let state = ctx.state();
        let statement =
            match state.sql_to_statement(&self.sql, &state.config().options().sql_parser.dialect) {
                Ok(statement) => statement,
                Err(source) => {
                    let hint = match source.find_root() {
                        DataFusionError::SQL(..) => keyword_hint(&self.sql, dialect(ctx).as_ref()),
                        _ => String::new(),
                    };
                    return Err(invalid(hint, source));
                }
            };
        if sampled(&statement) {
            return Err(invalid(
                " (DataFusion would read the whole table; sample with a condition such as WHERE random() < 0.1)".to_owned(),
                DataFusionError::NotImplemented("TABLESAMPLE".to_owned()),
            ));
        }
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|source| invalid(String::new(), source))?;
        if let Some(kind) = writing_statement(&plan) {
            return Err(QueryError::Writes {
                name: self.name.clone(),
                kind,
            });
        }
        ctx.execute_logical_plan(plan)
            .await
            .map_err(|source| invalid(String::new(), source))
    }
}

/// Whether `statement` samples a table (`FROM t TABLESAMPLE (10 PERCENT)`): DataFusion parses
/// the clause and reads the whole table, a count ten times too large with no error.
fn sampled(statement: &DFStatement) -> bool {
    struct Sample;
    impl Visitor for Sample {
        type Break = ();
        fn pre_visit_table_factor(&mut self, table: &TableFactor) -> ControlFlow<()> {
            match table {
                TableFactor::Table {
                    sample: Some(_), ..
                } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match statement {
        DFStatement::Statement(statement) => statement.visit(&mut Sample).is_break(),
        DFStatement::Explain(explain) => sampled(&explain.statement),
        _ => false,
    }
}

/// What to do about a statement that does not parse because a column named like a keyword
/// ends the select list: `SELECT Host, offset FROM t` (the Kafka column `offset`) reads as a
/// trailing comma and an `OFFSET` clause, as DataFusion's parser allows a trailing comma
/// there. Empty when the statement has no such name.
fn keyword_hint(sql: &str, dialect: &dyn Dialect) -> String {
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize() else {
        return String::new();
    };
    let mut words = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .peekable();
    while let Some(token) = words.next() {
        if let (Token::Comma, Some(Token::Word(word))) = (token, words.peek())
            && word.quote_style.is_none()
            && word.keyword == Keyword::OFFSET
        {
            return format!(
                " (`{}` after a comma reads as an OFFSET clause: quote the column, \"offset\" or `offset`)",
                word.value
            );
        }
    }
    String::new()
}

/// The statements of `script` (`bnetl sql "a; b"`, `bnetl sql -f FILE`, as `spark-sql -e`
/// and `-f` take them), each as its own text: the script is cut at its semicolons, except
/// those in a string, a quoted name or a comment. A piece with nothing but blanks and
/// comments is not a statement. Err: the tokenizer's message (an unclosed quote or comment).
pub fn split_statements(script: &str, dialect: &dyn Dialect) -> Result<Vec<String>, String> {
    let tokens = Tokenizer::new(dialect, script)
        .tokenize_with_location()
        .map_err(|e| e.to_string())?;
    // The (line, column) of each cutting semicolon, and whether the piece before it has a
    // token other than blanks and comments.
    let mut cuts = Vec::new();
    let mut content = Vec::new();
    let mut has_content = false;
    for token in &tokens {
        match token.token {
            Token::SemiColon => {
                cuts.push((token.span.start.line, token.span.start.column));
                content.push(std::mem::take(&mut has_content));
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => has_content = true,
        }
    }
    content.push(has_content);
    // Lines and columns count characters from 1, a newline starting a line, as the tokenizer
    // counts them.
    let mut bounds = Vec::with_capacity(cuts.len());
    let mut next = cuts.iter().peekable();
    let (mut line, mut column) = (1, 1);
    for (at, c) in script.char_indices() {
        if let Some(&&(cut_line, cut_column)) = next.peek()
            && (cut_line, cut_column) == (line, column)
        {
            // The tokenizer reads the inside of a `/*! ... */` comment hint as SQL, but places
            // its tokens where the comment starts: such a `;` is not where it says.
            if c != ';' {
                return Err(format!(
                    "a `;` inside a `/*! */` comment (line {cut_line}) is not supported"
                ));
            }
            bounds.push(at);
            next.next();
        }
        if c == '\n' {
            (line, column) = (line + 1, 1);
        } else {
            column += 1;
        }
    }
    if bounds.len() != cuts.len() {
        return Err("the statements' semicolons could not be located".to_owned());
    }
    let mut statements = Vec::new();
    let mut start = 0;
    for (i, &has_content) in content.iter().enumerate() {
        let end = bounds.get(i).copied().unwrap_or(script.len());
        if has_content {
            statements.push(script[start..end].trim().to_owned());
        }
        // Past the semicolon (one byte).
        start = end + 1;
    }
    Ok(statements)
}

/// The SQL dialect of `ctx` (DataFusion's `sql_parser.dialect`, generic by default).
pub fn dialect(ctx: &SessionContext) -> Box<dyn Dialect> {
    let name = ctx.state().config().options().sql_parser.dialect;
    dialect_from_str(name)
        .unwrap_or_else(|| Box::new(datafusion::sql::sqlparser::dialect::GenericDialect {}))
}

/// The kind of the first statement in `plan` that would write or change the session
/// (`INSERT INTO`, `COPY TO`, `CREATE EXTERNAL TABLE`, `SET VARIABLE`, ...), if any; an
/// `EXPLAIN` is looked into, since `EXPLAIN ANALYZE` runs its statement.
pub fn writing_statement(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        found = match node {
            LogicalPlan::Dml(dml) if dml.op == WriteOp::Ctas => Some("CREATE TABLE AS".to_owned()),
            LogicalPlan::Dml(dml) => Some(words(dml.op.name())),
            LogicalPlan::Copy(_) => Some("COPY TO".to_owned()),
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_)) => Some("CREATE TABLE".to_owned()),
            LogicalPlan::Ddl(ddl) => Some(words(ddl.name())),
            LogicalPlan::Statement(statement) => Some(words(statement.name())),
            _ => None,
        };
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// `CreateExternalTable` or `Insert Into` → `CREATE EXTERNAL TABLE` or `INSERT INTO`.
fn words(camel: &str) -> String {
    let mut text = String::new();
    for c in camel.chars() {
        if c.is_uppercase() && !text.is_empty() && !text.ends_with(' ') {
            text.push(' ');
        }
        text.extend(c.to_uppercase());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn kind(sql: &str) -> Option<String> {
        let ctx = crate::transform::session::new_context();
        ctx.sql("CREATE TABLE t (a INT)").await.unwrap();
        let query = Query {
            name: "q".into(),
            sql: sql.into(),
        };
        match query.plan(&ctx).await {
            Ok(_) => None,
            Err(QueryError::Writes { kind, .. }) => Some(kind),
            Err(e) => panic!("{sql}: {e:?}"),
        }
    }

    fn split(script: &str) -> Vec<String> {
        let ctx = crate::transform::session::new_context();
        split_statements(script, dialect(&ctx).as_ref()).unwrap()
    }

    #[test]
    fn a_sampled_table_and_offset_after_a_comma_are_told_apart_from_other_statements() {
        let ctx = crate::transform::session::new_context();
        let dialect = dialect(&ctx);
        let samples = |sql: &str, dialect: &dyn Dialect| {
            datafusion::sql::parser::DFParser::parse_sql_with_dialect(sql, dialect)
                .is_ok_and(|statements| statements.iter().any(sampled))
        };
        for sql in [
            "SELECT COUNT(*) FROM t TABLESAMPLE (10 PERCENT)",
            "SELECT * FROM (SELECT * FROM t TABLESAMPLE (5 ROWS)) s",
            "EXPLAIN SELECT a FROM u JOIN t TABLESAMPLE (1 PERCENT) ON u.a = t.a",
        ] {
            assert!(samples(sql, dialect.as_ref()), "{sql}");
        }
        for sql in [
            "SELECT * FROM t",
            "SELECT 'TABLESAMPLE' AS tablesample",
            "SELEC",
        ] {
            assert!(!samples(sql, dialect.as_ref()), "{sql}");
        }
        assert!(keyword_hint("SELECT Host, offset FROM t", dialect.as_ref()).contains("`offset`"));
        for sql in [
            "SELECT offset FROM t",
            "SELECT Host, \"offset\" FROM t",
            "SELECT * FROM t LIMIT 1 OFFSET 2",
        ] {
            assert_eq!(keyword_hint(sql, dialect.as_ref()), "", "{sql}");
        }
    }

    #[test]
    fn a_script_splits_at_its_semicolons_and_nowhere_else() {
        assert_eq!(split("SELECT 1"), ["SELECT 1"]);
        assert_eq!(split("SELECT 1;"), ["SELECT 1"]);
        assert_eq!(split(" SELECT 1 ; SELECT 2;\n"), ["SELECT 1", "SELECT 2"]);
        // Semicolons in strings, quoted names and comments, and text after them on other
        // lines, multibyte characters before them.
        let script =
            "SELECT 'a;b' AS \"x;y\" -- one; two\nFROM t;\n/* é; */ SELECT 'é'';' ;SELECT 3";
        assert_eq!(
            split(script),
            [
                "SELECT 'a;b' AS \"x;y\" -- one; two\nFROM t",
                "/* é; */ SELECT 'é'';'",
                "SELECT 3"
            ]
        );
        // Blank pieces and pieces of comments only are not statements.
        assert_eq!(split(";; SELECT 1;\n-- the end\n"), ["SELECT 1"]);
        assert!(split("  ").is_empty());
        assert!(split("-- nothing").is_empty());
    }

    #[test]
    fn an_unclosed_quote_and_a_semicolon_in_a_comment_hint_are_errors() {
        let ctx = crate::transform::session::new_context();
        let dialect = dialect(&ctx);
        let err = split_statements("SELECT 'a; SELECT 2", dialect.as_ref()).unwrap_err();
        assert!(err.contains("Unterminated"), "{err}");
        // The tokenizer reads `/*! */` as SQL and misplaces what is in it.
        for script in [
            "SELECT 1 /*!é12; x*/",
            "SELECT 1 /*!;*/ , 2",
            "SELECT 1 /*! hint; */",
        ] {
            let err = split_statements(script, dialect.as_ref()).unwrap_err();
            assert!(err.contains("/*! */"), "{script}: {err}");
        }
        // CRLF, tabs and text before a `;` count as the tokenizer counts them.
        assert_eq!(
            split("SELECT '日本'\t;\r\nSELECT 2"),
            ["SELECT '日本'", "SELECT 2"]
        );
    }

    #[tokio::test]
    async fn statements_that_write_are_refused_by_kind_and_queries_pass() {
        assert_eq!(kind("SELECT a FROM t WHERE a > 1").await, None);
        assert_eq!(kind("EXPLAIN SELECT a FROM t").await, None);
        assert_eq!(kind("SHOW TABLES").await, None);
        assert_eq!(
            kind("INSERT INTO t VALUES (1)").await.as_deref(),
            Some("INSERT INTO")
        );
        assert_eq!(
            kind("COPY (SELECT 1 AS a) TO '/tmp/x.csv' STORED AS CSV")
                .await
                .as_deref(),
            Some("COPY TO")
        );
        assert_eq!(
            kind("CREATE TABLE u AS SELECT * FROM t").await.as_deref(),
            Some("CREATE TABLE")
        );
        assert_eq!(
            kind("CREATE EXTERNAL TABLE e STORED AS PARQUET LOCATION '/tmp/e/'")
                .await
                .as_deref(),
            Some("CREATE EXTERNAL TABLE")
        );
        assert_eq!(kind("DROP TABLE t").await.as_deref(), Some("DROP TABLE"));
        assert_eq!(
            kind("CREATE VIEW v AS SELECT 1").await.as_deref(),
            Some("CREATE VIEW")
        );
        assert_eq!(
            kind("EXPLAIN ANALYZE INSERT INTO t VALUES (2)")
                .await
                .as_deref(),
            Some("INSERT INTO")
        );
        assert_eq!(
            kind("SET datafusion.execution.batch_size = 10")
                .await
                .as_deref(),
            Some("SET VARIABLE")
        );
    }
}
