//! Cursor pagination over ULID-ordered ids, with WorkOS's `before`/`after`/`order` semantics.
//!
//! Ids sort in creation order, so a cursor is just an id and a page is a range scan on the
//! primary key (or a `(user_id, id)` index). One extra row is fetched to know whether another
//! page exists; cursors in the answer are `None` (JSON `null`) at the ends, which is what
//! every SDK's auto-pagination stops on.

use tessera_core::Error;

use crate::sql::{Arg, FromRow};

use crate::Store;

/// `asc`, `desc` (default) or `normal` (descending, but `before` pages to older items and
/// `after` to newer ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    Asc,
    #[default]
    Desc,
    Normal,
}

#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// 1..=100, already validated.
    pub limit: i64,
    pub before: Option<String>,
    pub after: Option<String>,
    pub order: Order,
}

/// One page and the cursors to its neighbours.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// How to scan for one request: SQL fragments (never user text) plus the cursor to bind.
pub(crate) struct Scan {
    /// `id < $N` / `id > $N`, or `None` without a cursor.
    pub cmp: Option<&'static str>,
    /// `ASC` or `DESC`.
    pub dir: &'static str,
    /// The scan runs against the displayed order and must be reversed afterwards.
    pub backward: bool,
    pub cursor: Option<String>,
}

impl ListParams {
    pub(crate) fn scan(&self) -> Scan {
        let display_desc = !matches!(self.order, Order::Asc);
        // Which parameter moves forward in the displayed order.
        let (fwd, back) = match self.order {
            Order::Asc | Order::Desc => (&self.after, &self.before),
            Order::Normal => (&self.before, &self.after),
        };
        let (cursor, backward) = match (fwd, back) {
            (Some(c), _) => (Some(c.clone()), false),
            (None, Some(c)) => (Some(c.clone()), true),
            (None, None) => (None, false),
        };
        // Scanning forward in a descending display means smaller ids, and so on.
        let scan_desc = display_desc != backward;
        Scan {
            cmp: cursor.as_ref().map(|_| if scan_desc { "<" } else { ">" }),
            dir: if scan_desc { "DESC" } else { "ASC" },
            backward,
            cursor,
        }
    }

    /// Builds the page from `limit + 1` scanned rows.
    pub(crate) fn page<T>(
        &self,
        scan: &Scan,
        mut rows: Vec<T>,
        id: impl Fn(&T) -> &str,
    ) -> Page<T> {
        let limit = usize::try_from(self.limit).unwrap_or(10);
        let more = rows.len() > limit;
        rows.truncate(limit);
        if scan.backward {
            rows.reverse();
        }
        let first = rows.first().map(|r| id(r).to_owned());
        let last = rows.last().map(|r| id(r).to_owned());
        // Towards the end of the display order: more rows were found (forward scan), or we
        // came from there (backward scan). Towards the start: the mirror image.
        let (to_end, to_start) = if scan.backward {
            (
                last.filter(|_| scan.cursor.is_some()),
                first.filter(|_| more),
            )
        } else {
            (
                last.filter(|_| more),
                first.filter(|_| scan.cursor.is_some()),
            )
        };
        // Name them by the parameter that fetches them.
        let (after, before) = match self.order {
            Order::Asc | Order::Desc => (to_end, to_start),
            Order::Normal => (to_start, to_end),
        };
        Page {
            data: rows,
            before,
            after,
        }
    }
}

/// A list query paginated by id, the shape of every list of the API and the dashboard: the
/// caller gives `SELECT <columns> FROM <table> WHERE <filters>` and binds the filters' values;
/// [`ById::page`] adds the cursor condition, the order and the `limit + 1`, runs it, and builds
/// the page. Only SQL fragments written in the store go into the text; request values are
/// always bound.
pub(crate) struct ById<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
}

impl<'a> ById<'a> {
    pub(crate) fn new(select_where: impl Into<String>) -> Self {
        ById {
            sql: select_where.into(),
            args: Vec::new(),
        }
    }

    /// Binds `value` and returns its placeholder (`$N`) for a condition.
    pub(crate) fn bind(&mut self, value: impl Into<Arg<'a>>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    /// Adds ` AND <condition>` (with placeholders from [`ById::bind`]).
    pub(crate) fn and(&mut self, condition: &str) -> &mut Self {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
        self
    }

    /// Runs the query as the page `p` asks for.
    pub(crate) async fn page<T: FromRow + Send>(
        mut self,
        store: &Store,
        p: &ListParams,
        id: impl Fn(&T) -> &str,
    ) -> Result<Page<T>, Error> {
        let s = p.scan();
        if let (Some(cmp), Some(cursor)) = (s.cmp, &s.cursor) {
            let n = self.bind(cursor);
            self.and(&format!("id {cmp} {n}"));
        }
        let n = self.bind(p.limit + 1);
        self.sql += &format!(" ORDER BY id {} LIMIT {n}", s.dir);
        let (sql, args) = (self.sql, self.args);
        let rows = store.read_all(&sql, &args).await?;
        Ok(p.page(&s, rows, id))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("x_{i:03}")).collect()
    }

    /// An in-memory model of the SQL the store runs, to test the cursor logic exhaustively.
    pub(super) fn run_model(all: &[String], p: &ListParams) -> Page<String> {
        run(all, p)
    }

    fn run(all: &[String], p: &ListParams) -> Page<String> {
        let s = p.scan();
        let mut v: Vec<String> = all
            .iter()
            .filter(|id| match (s.cmp, &s.cursor) {
                (Some("<"), Some(c)) => id.as_str() < c.as_str(),
                (Some(">"), Some(c)) => id.as_str() > c.as_str(),
                _ => true,
            })
            .cloned()
            .collect();
        v.sort();
        if s.dir == "DESC" {
            v.reverse();
        }
        v.truncate(p.limit as usize + 1);
        p.page(&s, v, |x| x.as_str())
    }

    #[test]
    fn following_after_cursors_in_desc_visits_every_item_once_then_stops_on_null() {
        let all = ids(25);
        let mut p = ListParams {
            limit: 10,
            ..Default::default()
        };
        let mut seen = vec![];
        let mut pages = 0;
        loop {
            let page = run(&all, &p);
            pages += 1;
            seen.extend(page.data.clone());
            match page.after {
                Some(a) => p.after = Some(a),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let mut want = all.clone();
        want.reverse();
        assert_eq!(seen, want);
    }

    #[test]
    fn the_first_page_has_a_null_before_and_a_before_cursor_goes_back() {
        let all = ids(25);
        let first = run(
            &all,
            &ListParams {
                limit: 10,
                ..Default::default()
            },
        );
        assert_eq!(first.before, None);
        let second = run(
            &all,
            &ListParams {
                limit: 10,
                after: first.after.clone(),
                ..Default::default()
            },
        );
        assert_eq!(second.data[0], "x_014");
        let back = run(
            &all,
            &ListParams {
                limit: 10,
                before: second.before.clone(),
                ..Default::default()
            },
        );
        assert_eq!(back.data, first.data);
        assert_eq!(back.before, None);
    }

    #[test]
    fn asc_pages_forward_with_after() {
        let all = ids(5);
        let p = run(
            &all,
            &ListParams {
                limit: 2,
                order: Order::Asc,
                ..Default::default()
            },
        );
        assert_eq!(p.data, vec!["x_000", "x_001"]);
        let p2 = run(
            &all,
            &ListParams {
                limit: 2,
                order: Order::Asc,
                after: p.after,
                ..Default::default()
            },
        );
        assert_eq!(p2.data, vec!["x_002", "x_003"]);
    }

    #[test]
    fn normal_is_descending_and_pages_to_older_items_with_before() {
        let all = ids(5);
        let p = run(
            &all,
            &ListParams {
                limit: 2,
                order: Order::Normal,
                ..Default::default()
            },
        );
        assert_eq!(p.data, vec!["x_004", "x_003"]);
        assert_eq!(p.after, None);
        let p2 = run(
            &all,
            &ListParams {
                limit: 2,
                order: Order::Normal,
                before: p.before,
                ..Default::default()
            },
        );
        assert_eq!(p2.data, vec!["x_002", "x_001"]);
        let p3 = run(
            &all,
            &ListParams {
                limit: 2,
                order: Order::Normal,
                after: p2.after,
                ..Default::default()
            },
        );
        assert_eq!(p3.data, vec!["x_004", "x_003"]);
    }

    #[test]
    fn an_empty_table_has_no_cursors() {
        let p = run(
            &[],
            &ListParams {
                limit: 10,
                ..Default::default()
            },
        );
        assert!(p.data.is_empty() && p.before.is_none() && p.after.is_none());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Following `after` (or `before` for `normal`) from the first page visits every item
        /// exactly once, in display order, and ends on a null cursor.
        #[test]
        fn paging_forward_visits_everything_once(n in 0usize..60, limit in 1i64..12, order in 0u8..3) {
            let order = [Order::Asc, Order::Desc, Order::Normal][order as usize];
            let all: Vec<String> = (0..n).map(|i| format!("x_{i:03}")).collect();
            let mut p = ListParams { limit, order, ..Default::default() };
            let mut seen = vec![];
            for _ in 0..=n + 1 {
                let page = tests::run_model(&all, &p);
                seen.extend(page.data.clone());
                let next = if order == Order::Normal { page.before } else { page.after };
                match next {
                    Some(c) if order == Order::Normal => p.before = Some(c),
                    Some(c) => p.after = Some(c),
                    None => break,
                }
            }
            let mut want = all.clone();
            if order != Order::Asc {
                want.reverse();
            }
            prop_assert_eq!(seen, want);
        }
    }
}
