//! The execution engine's rules (SPEC.md section 5), without any I/O: feed it quotes,
//! signals, commands and the time; it returns the Order and Position updates to publish.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tradewire::v1::command_ack::Outcome;
use tradewire::v1::order::{OrderSide, OrderStatus, OrderType};
use tradewire::v1::strategy_command::CommandType;
use tradewire::v1::trading_signal::SignalType;
use tradewire::v1::{MarketData, Order, Position, StrategyCommand, TradingSignal};

use crate::fmt_num;

/// Quotes kept per symbol.
pub const QUOTES_KEPT: usize = 4096;
/// A signal waiting this long for its quote is applied against the newest one.
pub const QUOTE_WAIT: Duration = Duration::from_secs(1);
/// Parameters UPDATE_RISK_LIMITS accepts.
pub const RISK_PARAMETERS: [&str; 3] = ["max_daily_loss", "max_position_size", "order_quantity"];

/// What the engine asks to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Order(Order),
    Position(Position),
}

/// Risk limits (SPEC.md 5.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_position_size: f64,
    pub max_daily_loss: f64,
    pub order_quantity: f64,
}

/// Counters for the summary line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub signals: u64,
    pub orders: u64,
    pub filled: u64,
    pub rejected: u64,
    pub rejected_kill_switch: u64,
    pub rejected_paused: u64,
    pub rejected_max_position_size: u64,
    pub rejected_max_daily_loss: u64,
    pub commands: u64,
    pub duplicate_signals: u64,
    pub stale_quotes: u64,
    pub dropped_signals: u64,
}

#[derive(Debug, Clone, Default)]
struct Pos {
    symbol: String,
    q: f64,
    c: f64,
    r: f64,
    mark: f64,
}

impl Pos {
    fn unrealized(&self) -> f64 {
        if self.q == 0.0 {
            0.0
        } else {
            self.q * (self.mark - self.c)
        }
    }

    /// SPEC.md 5.4.
    fn fill(&mut self, d: f64, p: f64) {
        let q = self.q;
        let x = d.abs();
        if q == 0.0 || (q > 0.0) == (d > 0.0) {
            let q2 = q + d;
            self.c = (q.abs() * self.c + x * p) / q2.abs();
            self.q = q2;
        } else {
            let closed = q.abs().min(x);
            let sign = if q > 0.0 { 1.0 } else { -1.0 };
            self.r += closed * (p - self.c) * sign;
            let q2 = q + d;
            self.c = if q2 == 0.0 {
                0.0
            } else if (q2 > 0.0) != (q > 0.0) {
                p
            } else {
                self.c
            };
            self.q = q2;
        }
    }
}

/// The engine state.
#[derive(Debug)]
pub struct Engine {
    run: String,
    pub limits: Limits,
    n: u64,
    quotes: HashMap<String, VecDeque<(i64, f64, f64)>>,
    pending: VecDeque<(TradingSignal, Instant)>,
    last_t: HashMap<String, i64>,
    positions: Vec<Pos>,
    index: HashMap<String, usize>,
    paused_all: bool,
    paused: BTreeSet<String>,
    kill: bool,
    /// Orders SUBMITTED and not yet FILLED: what the kill switch cancels (SPEC.md 5.5).
    open: Vec<Order>,
    pub stats: EngineStats,
}

enum Match {
    Wait,
    Quote(f64, f64),
}

impl Engine {
    pub fn new(run: String, limits: Limits) -> Self {
        Engine {
            run,
            limits,
            n: 0,
            quotes: HashMap::new(),
            pending: VecDeque::new(),
            last_t: HashMap::new(),
            positions: Vec::new(),
            index: HashMap::new(),
            paused_all: false,
            paused: BTreeSet::new(),
            kill: false,
            open: Vec::new(),
            stats: EngineStats::default(),
        }
    }

    /// The run id used in order ids.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// Whether the kill switch is engaged.
    pub fn killed(&self) -> bool {
        self.kill
    }

    /// Orders submitted and not yet filled.
    pub fn open_orders(&self) -> usize {
        self.open.len()
    }

    /// Signals waiting for their quote.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// (symbol, quantity) in order of first appearance.
    pub fn positions(&self) -> Vec<(String, f64)> {
        self.positions
            .iter()
            .map(|p| (p.symbol.clone(), p.q))
            .collect()
    }

    /// (realized, unrealized) summed over symbols in order of first appearance.
    pub fn pnl(&self) -> (f64, f64) {
        let mut r = 0.0;
        let mut u = 0.0;
        for p in &self.positions {
            r += p.r;
            u += p.unrealized();
        }
        (r, u)
    }

    /// A market-data tick.
    pub fn on_quote(&mut self, md: &MarketData, now: Instant, out: &mut Vec<Output>) {
        let q = self.quotes.entry(md.symbol.clone()).or_default();
        if q.len() == QUOTES_KEPT {
            q.pop_front();
        }
        q.push_back((md.timestamp_us, md.bid, md.ask));
        self.drain(now, out);
    }

    /// A trading signal.
    pub fn on_signal(&mut self, signal: TradingSignal, now: Instant, out: &mut Vec<Output>) {
        self.stats.signals += 1;
        self.pending.push_back((signal, now));
        self.drain(now, out);
    }

    /// Time passes: a head signal that waited `QUOTE_WAIT` is applied or dropped.
    pub fn on_timer(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.drain(now, out);
    }

    fn lookup(&mut self, symbol: &str, t: i64, waited: Duration) -> Option<Match> {
        let Some(q) = self.quotes.get(symbol).filter(|q| !q.is_empty()) else {
            return if waited >= QUOTE_WAIT {
                None
            } else {
                Some(Match::Wait)
            };
        };
        let newest = q[q.len() - 1];
        if newest.0 < t {
            if waited >= QUOTE_WAIT {
                self.stats.stale_quotes += 1;
                return Some(Match::Quote(newest.1, newest.2));
            }
            return Some(Match::Wait);
        }
        if let Some(&(_, b, a)) = q.iter().rev().find(|e| e.0 <= t) {
            return Some(Match::Quote(b, a));
        }
        self.stats.stale_quotes += 1;
        Some(Match::Quote(q[0].1, q[0].2))
    }

    fn drain(&mut self, now: Instant, out: &mut Vec<Output>) {
        while let Some((signal, since)) = self.pending.front() {
            let t = signal.timestamp_us;
            let symbol = signal.symbol.clone();
            if self.last_t.get(&symbol).is_some_and(|&last| t <= last) {
                self.stats.duplicate_signals += 1;
                self.pending.pop_front();
                continue;
            }
            let waited = now.saturating_duration_since(*since);
            match self.lookup(&symbol, t, waited) {
                Some(Match::Wait) => return,
                None => {
                    self.stats.dropped_signals += 1;
                    self.pending.pop_front();
                }
                Some(Match::Quote(bid, ask)) => {
                    let Some((signal, _)) = self.pending.pop_front() else {
                        return;
                    };
                    self.last_t.insert(symbol, t);
                    self.apply(&signal, bid, ask, out);
                }
            }
        }
    }

    fn position_index(&mut self, symbol: &str) -> usize {
        if let Some(&i) = self.index.get(symbol) {
            return i;
        }
        self.positions.push(Pos {
            symbol: symbol.to_owned(),
            ..Pos::default()
        });
        self.index
            .insert(symbol.to_owned(), self.positions.len() - 1);
        self.positions.len() - 1
    }

    fn apply(&mut self, signal: &TradingSignal, bid: f64, ask: f64, out: &mut Vec<Output>) {
        let s = signal.symbol.as_str();
        let t = signal.timestamp_us;
        let i = self.position_index(s);
        self.positions[i].mark = (bid + ask) / 2.0;
        let side = match SignalType::try_from(signal.signal) {
            Ok(SignalType::Buy) => OrderSide::Buy,
            Ok(SignalType::Sell) => OrderSide::Sell,
            _ => {
                self.publish_position(i, t, false, out);
                return;
            }
        };
        self.n += 1;
        self.stats.orders += 1;
        let quantity = self.limits.order_quantity;
        let price = if side == OrderSide::Buy { ask } else { bid };
        let mut order = Order {
            order_id: format!("{}-{}", self.run, self.n),
            client_order_id: format!("{s}@{t}"),
            symbol: s.to_owned(),
            side: side as i32,
            quantity,
            price,
            r#type: OrderType::Market as i32,
            status: OrderStatus::Created as i32,
            timestamp_us: t,
            rejection_reason: String::new(),
        };
        out.push(Output::Order(order.clone()));
        let d = if side == OrderSide::Buy {
            quantity
        } else {
            -quantity
        };
        match self.check(i, d) {
            Some(reason) => {
                self.stats.rejected += 1;
                order.status = OrderStatus::Rejected as i32;
                order.rejection_reason = reason;
                out.push(Output::Order(order));
                self.publish_position(i, t, false, out);
            }
            None => {
                order.status = OrderStatus::Submitted as i32;
                out.push(Output::Order(order.clone()));
                self.open.push(order);
                // A market order fills at once, at the matched quote (5.2).
                let Some(mut order) = self.open.pop() else {
                    return;
                };
                order.status = OrderStatus::Filled as i32;
                out.push(Output::Order(order));
                self.stats.filled += 1;
                self.positions[i].fill(d, price);
                self.publish_position(i, t, true, out);
            }
        }
    }

    /// SPEC.md 5.3: the reason of the first failing check.
    fn check(&mut self, i: usize, d: f64) -> Option<String> {
        let s = self.positions[i].symbol.clone();
        let q = self.positions[i].q;
        let after = q + d;
        let reducing = after.abs() < q.abs();
        if self.kill {
            self.stats.rejected_kill_switch += 1;
            return Some("kill switch engaged".into());
        }
        if self.paused_all {
            self.stats.rejected_paused += 1;
            return Some("trading paused".into());
        }
        if self.paused.contains(&s) {
            self.stats.rejected_paused += 1;
            return Some(format!("trading paused for {s}"));
        }
        let limit = self.limits.max_position_size;
        if after.abs() > limit && !reducing {
            self.stats.rejected_max_position_size += 1;
            return Some(format!(
                "max_position_size: position would be {}, limit {}",
                fmt_num(after),
                fmt_num(limit)
            ));
        }
        let mut pnl = 0.0;
        for p in &self.positions {
            pnl += p.r + p.unrealized();
        }
        let loss = self.limits.max_daily_loss;
        if pnl <= -loss && !reducing {
            self.stats.rejected_max_daily_loss += 1;
            return Some(format!(
                "max_daily_loss: daily P&L {}, limit -{}",
                fmt_num(pnl),
                fmt_num(loss)
            ));
        }
        None
    }

    fn publish_position(&self, i: usize, t: i64, filled: bool, out: &mut Vec<Output>) {
        let p = &self.positions[i];
        if !filled && p.q == 0.0 {
            return;
        }
        out.push(Output::Position(Position {
            symbol: p.symbol.clone(),
            quantity: p.q,
            avg_cost: p.c,
            current_price: p.mark,
            unrealized_pnl: p.unrealized(),
            realized_pnl: p.r,
            last_updated_us: t,
        }));
    }

    /// A strategy command (SPEC.md 5.5): (outcome, reason). Order updates it causes (the
    /// kill switch's CANCELLED) go to `out`.
    pub fn on_command(
        &mut self,
        cmd: &StrategyCommand,
        out: &mut Vec<Output>,
    ) -> (Outcome, String) {
        self.stats.commands += 1;
        match CommandType::try_from(cmd.r#type) {
            Ok(CommandType::UpdateRiskLimits) => {
                if cmd.parameters.is_empty() {
                    return (Outcome::Rejected, "no parameters".into());
                }
                let mut new = self.limits.clone();
                for (k, &v) in &cmd.parameters {
                    let slot = match k.as_str() {
                        "max_position_size" => &mut new.max_position_size,
                        "max_daily_loss" => &mut new.max_daily_loss,
                        "order_quantity" => &mut new.order_quantity,
                        _ => {
                            return (
                                Outcome::Rejected,
                                format!(
                                    "unknown parameter {k} (known: {})",
                                    RISK_PARAMETERS.join(", ")
                                ),
                            )
                        }
                    };
                    if !(v.is_finite() && v > 0.0) {
                        return (
                            Outcome::Rejected,
                            format!("{k} must be a finite number > 0, got {}", fmt_num(v)),
                        );
                    }
                    *slot = v;
                }
                self.limits = new;
                (Outcome::Applied, String::new())
            }
            Ok(CommandType::PauseTrading) => {
                if cmd.symbol.is_empty() {
                    self.paused_all = true;
                } else {
                    self.paused.insert(cmd.symbol.clone());
                }
                (Outcome::Applied, String::new())
            }
            Ok(CommandType::ResumeTrading) => {
                if cmd.symbol.is_empty() {
                    self.paused_all = false;
                    self.paused.clear();
                    self.kill = false;
                    return (Outcome::Applied, String::new());
                }
                self.paused.remove(&cmd.symbol);
                let reason = if self.kill {
                    "kill switch still engaged"
                } else if self.paused_all {
                    "trading still paused"
                } else {
                    ""
                };
                (Outcome::Applied, reason.into())
            }
            Ok(CommandType::KillSwitch) => {
                self.kill = true;
                let k = self.open.len();
                for mut order in self.open.drain(..) {
                    order.status = OrderStatus::Cancelled as i32;
                    out.push(Output::Order(order));
                }
                (
                    Outcome::Applied,
                    format!("kill switch engaged; {k} open orders cancelled"),
                )
            }
            Err(_) => (
                Outcome::Rejected,
                format!("unknown command type {}", cmd.r#type),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_position_size: 150.0,
            max_daily_loss: 1e9,
            order_quantity: 100.0,
        }
    }

    fn md(s: &str, t: i64, bid: f64, ask: f64) -> MarketData {
        MarketData {
            symbol: s.into(),
            timestamp_us: t,
            bid,
            ask,
            ..Default::default()
        }
    }

    fn sig(s: &str, t: i64, k: SignalType) -> TradingSignal {
        TradingSignal {
            symbol: s.into(),
            signal: k as i32,
            timestamp_us: t,
            ..Default::default()
        }
    }

    fn orders(out: &[Output]) -> Vec<(String, i32, String)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Order(o) => {
                    Some((o.order_id.clone(), o.status, o.rejection_reason.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn fills_positions_and_limits() {
        let now = Instant::now();
        let mut e = Engine::new("t".into(), limits());
        let mut out = Vec::new();
        // Signal first, quote later: waits, then fills at the quote of its tick.
        e.on_signal(sig("A", 10, SignalType::Buy), now, &mut out);
        assert!(out.is_empty());
        e.on_quote(&md("A", 10, 99.0, 101.0), now, &mut out);
        let o = orders(&out);
        assert_eq!(o.len(), 3);
        assert_eq!(o[2].1, OrderStatus::Filled as i32);
        let Some(Output::Position(p)) = out.last() else {
            panic!("no position")
        };
        assert_eq!(
            (p.quantity, p.avg_cost, p.current_price),
            (100.0, 101.0, 100.0)
        );
        assert_eq!(p.unrealized_pnl, -100.0);
        out.clear();
        // Second buy exceeds 150.
        e.on_quote(&md("A", 20, 109.0, 111.0), now, &mut out);
        e.on_signal(sig("A", 20, SignalType::Buy), now, &mut out);
        let o = orders(&out);
        assert_eq!(
            o[1].2,
            "max_position_size: position would be 200.0, limit 150.0"
        );
        out.clear();
        // Sell closes at the bid: realized (109 - 101) * 100.
        e.on_signal(sig("A", 20, SignalType::Sell), now, &mut out);
        assert_eq!(e.stats.duplicate_signals, 1);
        e.on_quote(&md("A", 30, 109.0, 111.0), now, &mut out);
        e.on_signal(sig("A", 30, SignalType::Sell), now, &mut out);
        let Some(Output::Position(p)) = out.last() else {
            panic!("no position")
        };
        assert_eq!((p.quantity, p.avg_cost, p.realized_pnl), (0.0, 0.0, 800.0));
        // Kill switch.
        assert_eq!(
            e.on_command(
                &StrategyCommand {
                    r#type: CommandType::KillSwitch as i32,
                    ..Default::default()
                },
                &mut out
            )
            .0,
            Outcome::Applied
        );
        out.clear();
        e.on_quote(&md("A", 40, 109.0, 111.0), now, &mut out);
        e.on_signal(sig("A", 40, SignalType::Buy), now, &mut out);
        assert_eq!(orders(&out)[1].2, "kill switch engaged");
    }

    #[test]
    fn risk_limit_commands() {
        let mut e = Engine::new("t".into(), limits());
        let mut cmd = StrategyCommand {
            r#type: CommandType::UpdateRiskLimits as i32,
            ..Default::default()
        };
        assert_eq!(e.on_command(&cmd, &mut Vec::new()).1, "no parameters");
        cmd.parameters.insert("max_position_size".into(), 5.0);
        cmd.parameters.insert("bogus".into(), 1.0);
        assert!(e
            .on_command(&cmd, &mut Vec::new())
            .1
            .starts_with("unknown parameter bogus"));
        cmd.parameters.remove("bogus");
        cmd.parameters.insert("order_quantity".into(), -1.0);
        assert_eq!(
            e.on_command(&cmd, &mut Vec::new()).1,
            "order_quantity must be a finite number > 0, got -1.0"
        );
        cmd.parameters.insert("order_quantity".into(), 2.0);
        // All or nothing: the valid max_position_size was not applied either.
        assert_eq!(e.limits, limits());
        cmd.parameters.insert("order_quantity".into(), 2.0);
        assert_eq!(e.on_command(&cmd, &mut Vec::new()).0, Outcome::Applied);
        assert_eq!(e.limits.order_quantity, 2.0);
        assert_eq!(e.limits.max_position_size, 5.0);
        assert_eq!(e.stats.commands, 4);
    }

    fn command(e: &mut Engine, kind: CommandType, symbol: &str) -> (Outcome, String) {
        let mut out = Vec::new();
        let ack = e.on_command(
            &StrategyCommand {
                r#type: kind as i32,
                symbol: symbol.into(),
                ..Default::default()
            },
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        ack
    }

    /// The outcome of one BUY signal for `s` at `t`: the final status and reason.
    fn buy(e: &mut Engine, s: &str, t: i64) -> (i32, String) {
        let now = Instant::now();
        let mut out = Vec::new();
        e.on_quote(&md(s, t, 99.0, 101.0), now, &mut out);
        e.on_signal(sig(s, t, SignalType::Buy), now, &mut out);
        let o = orders(&out);
        let last = o.last().expect("an order");
        (last.1, last.2.clone())
    }

    const FILLED: i32 = OrderStatus::Filled as i32;
    const REJECTED: i32 = OrderStatus::Rejected as i32;

    #[test]
    fn pause_all_and_resume() {
        let mut e = Engine::new(
            "t".into(),
            Limits {
                max_position_size: 1e9,
                ..limits()
            },
        );
        assert_eq!(buy(&mut e, "A", 1).0, FILLED);
        assert_eq!(
            command(&mut e, CommandType::PauseTrading, ""),
            (Outcome::Applied, String::new())
        );
        assert_eq!(buy(&mut e, "A", 2), (REJECTED, "trading paused".into()));
        assert_eq!(buy(&mut e, "B", 2), (REJECTED, "trading paused".into()));
        // A symbol resume does not lift the pause of all symbols, and says so.
        assert_eq!(
            command(&mut e, CommandType::ResumeTrading, "A"),
            (Outcome::Applied, "trading still paused".into())
        );
        assert_eq!(buy(&mut e, "A", 3), (REJECTED, "trading paused".into()));
        assert_eq!(
            command(&mut e, CommandType::ResumeTrading, ""),
            (Outcome::Applied, String::new())
        );
        assert_eq!(buy(&mut e, "A", 4).0, FILLED);
        assert_eq!(buy(&mut e, "B", 4).0, FILLED);
        assert_eq!(e.stats.rejected_paused, 3);
        assert_eq!(e.stats.rejected, 3);
    }

    #[test]
    fn resume_one_symbol_while_kill_switch_engaged() {
        let mut e = Engine::new(
            "t".into(),
            Limits {
                max_position_size: 1e9,
                ..limits()
            },
        );
        command(&mut e, CommandType::PauseTrading, "A");
        assert_eq!(
            buy(&mut e, "A", 1),
            (REJECTED, "trading paused for A".into())
        );
        assert_eq!(buy(&mut e, "B", 1).0, FILLED);
        assert_eq!(
            command(&mut e, CommandType::KillSwitch, ""),
            (
                Outcome::Applied,
                "kill switch engaged; 0 open orders cancelled".into()
            )
        );
        assert!(e.killed());
        // Checked first: the kill switch, even with pauses in place.
        assert_eq!(
            command(&mut e, CommandType::ResumeTrading, "A"),
            (Outcome::Applied, "kill switch still engaged".into())
        );
        assert!(e.killed());
        assert_eq!(
            buy(&mut e, "A", 2),
            (REJECTED, "kill switch engaged".into())
        );
        assert_eq!(
            buy(&mut e, "B", 2),
            (REJECTED, "kill switch engaged".into())
        );
        assert_eq!(
            command(&mut e, CommandType::ResumeTrading, ""),
            (Outcome::Applied, String::new())
        );
        assert!(!e.killed());
        assert_eq!(buy(&mut e, "A", 3).0, FILLED);
        assert_eq!(e.stats.rejected_kill_switch, 2);
    }

    #[test]
    fn unknown_command_type_is_rejected_and_changes_nothing() {
        let mut e = Engine::new("t".into(), limits());
        let mut out = Vec::new();
        let ack = e.on_command(
            &StrategyCommand {
                r#type: 42,
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(ack, (Outcome::Rejected, "unknown command type 42".into()));
        assert!(out.is_empty());
        assert_eq!(e.stats.commands, 1);
        assert_eq!(e.limits, limits());
        assert!(!e.killed());
        assert_eq!(buy(&mut e, "A", 1).0, FILLED);
    }

    #[test]
    fn risk_limit_update_takes_effect_on_the_next_order() {
        let mut e = Engine::new(
            "t".into(),
            Limits {
                max_position_size: 1e9,
                ..limits()
            },
        );
        let mut cmd = StrategyCommand {
            r#type: CommandType::UpdateRiskLimits as i32,
            ..Default::default()
        };
        cmd.parameters.insert("order_quantity".into(), 30.0);
        cmd.parameters.insert("max_position_size".into(), 50.0);
        assert_eq!(
            e.on_command(&cmd, &mut Vec::new()),
            (Outcome::Applied, String::new())
        );
        let now = Instant::now();
        let mut out = Vec::new();
        e.on_quote(&md("A", 1, 99.0, 101.0), now, &mut out);
        e.on_signal(sig("A", 1, SignalType::Buy), now, &mut out);
        let quantities: Vec<f64> = out
            .iter()
            .filter_map(|o| match o {
                Output::Order(o) => Some(o.quantity),
                _ => None,
            })
            .collect();
        assert_eq!(quantities, [30.0, 30.0, 30.0]);
        assert_eq!(
            buy(&mut e, "A", 2),
            (
                REJECTED,
                "max_position_size: position would be 60.0, limit 50.0".into()
            )
        );
        assert_eq!(e.positions(), [("A".to_owned(), 30.0)]);
    }

    #[test]
    fn kill_switch_cancels_open_orders_and_counts_them() {
        let mut e = Engine::new("t".into(), limits());
        assert_eq!(buy(&mut e, "A", 1).0, FILLED);
        // Market orders fill when created: nothing stays open between events.
        assert_eq!(e.open_orders(), 0);
        let resting = Order {
            order_id: "t-9".into(),
            symbol: "A".into(),
            status: OrderStatus::Submitted as i32,
            ..Default::default()
        };
        e.open.push(resting.clone());
        let mut out = Vec::new();
        let kill = StrategyCommand {
            r#type: CommandType::KillSwitch as i32,
            ..Default::default()
        };
        assert_eq!(
            e.on_command(&kill, &mut out),
            (
                Outcome::Applied,
                "kill switch engaged; 1 open orders cancelled".into()
            )
        );
        assert_eq!(
            out,
            [Output::Order(Order {
                status: OrderStatus::Cancelled as i32,
                ..resting
            })]
        );
        assert_eq!(e.open_orders(), 0);
        out.clear();
        assert_eq!(
            e.on_command(&kill, &mut out).1,
            "kill switch engaged; 0 open orders cancelled"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn flip_and_average_cost() {
        let mut p = Pos::default();
        p.fill(100.0, 10.0);
        p.fill(100.0, 20.0);
        assert_eq!((p.q, p.c), (200.0, 15.0));
        p.fill(-300.0, 30.0);
        assert_eq!((p.q, p.c, p.r), (-100.0, 30.0, 3000.0));
        p.fill(50.0, 20.0);
        assert_eq!((p.q, p.c, p.r), (-50.0, 30.0, 3500.0));
    }
}
