//! The execution engine without I/O: feed it quotes, signals, commands and the time; it
//! returns the Order and Position updates to publish and the command outcomes (the rules are
//! in the crate documentation, "execution-engine"). [`Engine::state`] and
//! [`Engine::restore`] carry everything it decided across a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use tradewire::v1::command_ack::Outcome;
use tradewire::v1::order::{OrderSide, OrderStatus, OrderType};
use tradewire::v1::strategy_command::CommandType;
use tradewire::v1::trading_signal::SignalType;
use tradewire::v1::{MarketData, Order, Position, StrategyCommand, TradingSignal};

use crate::fmt_num;

/// A reading of a monotonic clock in nanoseconds, from any origin: the engine only
/// subtracts two of them.
pub type Nanos = u64;

/// Quotes kept per symbol.
pub const QUOTES_KEPT: usize = 4096;
/// A signal waiting this long for its quote is applied against the newest one (1 s).
pub const QUOTE_WAIT: Nanos = 1_000_000_000;
/// Parameters UPDATE_RISK_LIMITS accepts, in the order they are checked.
pub const RISK_PARAMETERS: [&str; 3] = ["max_daily_loss", "max_position_size", "order_quantity"];
/// The version of [`EngineState`]'s format.
pub const STATE_FORMAT: u32 = 1;

/// What the engine asks to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Order(Order),
    Position(Position),
}

/// Risk limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(with = "float")]
    pub max_position_size: f64,
    #[serde(with = "float")]
    pub max_daily_loss: f64,
    #[serde(with = "float")]
    pub order_quantity: f64,
}

/// Orders rejected, by the check that rejected them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejections {
    pub kill_switch: u64,
    pub paused: u64,
    pub max_position_size: u64,
    pub max_daily_loss: u64,
}

/// Counters of the engine's summary line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineStats {
    pub signals: u64,
    pub orders: u64,
    pub filled: u64,
    pub rejected: u64,
    pub rejections: Rejections,
    pub commands: u64,
    pub duplicate_signals: u64,
    pub stale_quotes: u64,
    pub dropped_signals: u64,
}

/// One symbol's inventory by average cost: signed quantity (long > 0), the average cost of
/// that open quantity and the P&L realized so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Book {
    #[serde(with = "float")]
    pub quantity: f64,
    #[serde(with = "float")]
    pub avg_cost: f64,
    #[serde(with = "float")]
    pub realized: f64,
}

impl Book {
    /// Applies a fill of signed quantity `d` (buy > 0, sell < 0) at price `p`; returns the
    /// P&L it realized (also added to `realized`). A fill of 0 changes nothing.
    pub fn fill(&mut self, d: f64, p: f64) -> f64 {
        let q = self.quantity;
        if d == 0.0 {
            return 0.0;
        }
        let x = d.abs();
        if q == 0.0 || (q > 0.0) == (d > 0.0) {
            let q2 = q + d;
            self.avg_cost = (q.abs() * self.avg_cost + x * p) / q2.abs();
            self.quantity = q2;
            return 0.0;
        }
        let closed = q.abs().min(x);
        let sign = if q > 0.0 { 1.0 } else { -1.0 };
        let realized = closed * (p - self.avg_cost) * sign;
        self.realized += realized;
        let q2 = q + d;
        if q2 == 0.0 {
            self.avg_cost = 0.0;
        } else if (q2 > 0.0) != (q > 0.0) {
            self.avg_cost = p;
        }
        self.quantity = q2;
        realized
    }

    /// The P&L of the open quantity marked at `mark` (0.0 when flat).
    pub fn unrealized(&self, mark: f64) -> f64 {
        if self.quantity == 0.0 {
            0.0
        } else {
            self.quantity * (mark - self.avg_cost)
        }
    }
}

/// A symbol's position: its book and its mark (the mid of the last matched quote).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionState {
    pub symbol: String,
    pub book: Book,
    #[serde(with = "float")]
    pub mark: f64,
}

impl PositionState {
    fn unrealized(&self) -> f64 {
        self.book.unrealized(self.mark)
    }
}

/// An order as the state holds it: every field of [`Order`], enums as their numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderState {
    pub order_id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: i32,
    #[serde(with = "float")]
    pub quantity: f64,
    #[serde(with = "float")]
    pub price: f64,
    pub order_type: i32,
    pub status: i32,
    pub timestamp_us: i64,
    pub rejection_reason: String,
}

impl From<&Order> for OrderState {
    fn from(o: &Order) -> Self {
        OrderState {
            order_id: o.order_id.clone(),
            client_order_id: o.client_order_id.clone(),
            symbol: o.symbol.clone(),
            side: o.side,
            quantity: o.quantity,
            price: o.price,
            order_type: o.r#type,
            status: o.status,
            timestamp_us: o.timestamp_us,
            rejection_reason: o.rejection_reason.clone(),
        }
    }
}

impl From<OrderState> for Order {
    fn from(o: OrderState) -> Self {
        Order {
            order_id: o.order_id,
            client_order_id: o.client_order_id,
            symbol: o.symbol,
            side: o.side,
            quantity: o.quantity,
            price: o.price,
            r#type: o.order_type,
            status: o.status,
            timestamp_us: o.timestamp_us,
            rejection_reason: o.rejection_reason,
        }
    }
}

/// Everything the engine has decided, for [`Engine::restore`]: an engine restored from it
/// numbers, checks, fills and reports exactly as the engine it was taken from.
///
/// Not in it: the quotes held and the signals waiting for theirs. Those are inputs, not
/// decisions, and a restarted service takes them again from its upstream (market data from
/// the publisher's first message, which the engine matches by timestamp; a signal applied
/// before is recognised by `last_signal_us` and ignored). The daily P&L of the
/// `max_daily_loss` check is not stored either: it is recomputed from the positions (their
/// realized P&L and marks).
///
/// JSON ([`EngineState::to_json`]) holds the very same doubles; a double that is not
/// finite is written as the string `"NaN"`, `"inf"` or `"-inf"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineState {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// The run id in order ids (`<run>-<n>`).
    pub run: String,
    /// Orders created so far: the next order is `<run>-<orders_created + 1>`.
    pub orders_created: u64,
    /// The risk limits, with every change made by command.
    pub limits: Limits,
    /// Positions in order of first appearance (the order of the P&L sum).
    pub positions: Vec<PositionState>,
    /// Orders submitted and not yet filled, in submission order.
    pub open_orders: Vec<OrderState>,
    /// The timestamp of the last signal applied, per symbol.
    pub last_signal_us: BTreeMap<String, i64>,
    pub paused_all: bool,
    pub paused: BTreeSet<String>,
    pub kill_switch: bool,
    pub stats: EngineStats,
}

impl EngineState {
    /// The state as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("serializable: {e}"))
    }

    /// A state written by [`EngineState::to_json`]; an error names what is wrong.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let state: EngineState =
            serde_json::from_str(text).map_err(|e| format!("engine state: {e}"))?;
        if state.format != STATE_FORMAT {
            return Err(format!(
                "engine state: format {}, this engine reads {STATE_FORMAT}",
                state.format
            ));
        }
        Ok(state)
    }
}

/// Doubles in JSON, the non-finite ones as strings.
mod float {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else if x.is_nan() {
            s.serialize_str("NaN")
        } else if *x > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Number(f64),
        Name(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Text::deserialize(d)? {
            Text::Number(x) => Ok(x),
            Text::Name(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                _ => Err(D::Error::custom(format!("{s:?} is not a number"))),
            },
        }
    }
}

/// The engine.
#[derive(Debug)]
pub struct Engine {
    run: String,
    pub limits: Limits,
    n: u64,
    quotes: HashMap<String, VecDeque<(i64, f64, f64)>>,
    pending: VecDeque<(TradingSignal, Nanos)>,
    last_t: HashMap<String, i64>,
    positions: Vec<PositionState>,
    index: HashMap<String, usize>,
    paused_all: bool,
    paused: BTreeSet<String>,
    kill: bool,
    /// Orders SUBMITTED and not yet FILLED: what the kill switch cancels.
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

    /// What the engine has decided so far (see [`EngineState`]).
    pub fn state(&self) -> EngineState {
        EngineState {
            format: STATE_FORMAT,
            run: self.run.clone(),
            orders_created: self.n,
            limits: self.limits.clone(),
            positions: self.positions.clone(),
            open_orders: self.open.iter().map(OrderState::from).collect(),
            last_signal_us: self.last_t.iter().map(|(k, &v)| (k.clone(), v)).collect(),
            paused_all: self.paused_all,
            paused: self.paused.clone(),
            kill_switch: self.kill,
            stats: self.stats.clone(),
        }
    }

    /// An engine that goes on from `state`, holding no quote and no waiting signal. Error:
    /// a state of another format, or naming a symbol's position twice.
    pub fn restore(state: EngineState) -> Result<Self, String> {
        if state.format != STATE_FORMAT {
            return Err(format!(
                "engine state: format {}, this engine reads {STATE_FORMAT}",
                state.format
            ));
        }
        let mut index = HashMap::new();
        for (i, p) in state.positions.iter().enumerate() {
            if index.insert(p.symbol.clone(), i).is_some() {
                return Err(format!("engine state: two positions for {:?}", p.symbol));
            }
        }
        Ok(Engine {
            run: state.run,
            limits: state.limits,
            n: state.orders_created,
            quotes: HashMap::new(),
            pending: VecDeque::new(),
            last_t: state.last_signal_us.into_iter().collect(),
            positions: state.positions,
            index,
            paused_all: state.paused_all,
            paused: state.paused,
            kill: state.kill_switch,
            open: state.open_orders.into_iter().map(Order::from).collect(),
            stats: state.stats,
        })
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
            .map(|p| (p.symbol.clone(), p.book.quantity))
            .collect()
    }

    /// (realized, unrealized) summed over symbols in order of first appearance.
    pub fn pnl(&self) -> (f64, f64) {
        let mut r = 0.0;
        let mut u = 0.0;
        for p in &self.positions {
            r += p.book.realized;
            u += p.unrealized();
        }
        (r, u)
    }

    /// The figures of the service's summary line: the counters, `positions` (`{symbol:
    /// quantity}`), `realized_pnl` and `unrealized_pnl`.
    pub fn summary(&self) -> serde_json::Value {
        let mut v =
            serde_json::to_value(&self.stats).unwrap_or_else(|e| unreachable!("serializable: {e}"));
        let (realized, unrealized) = self.pnl();
        let positions: serde_json::Map<String, serde_json::Value> = self
            .positions()
            .into_iter()
            .map(|(k, q)| (k, serde_json::json!(q)))
            .collect();
        if let Some(m) = v.as_object_mut() {
            m.insert("positions".into(), positions.into());
            m.insert("realized_pnl".into(), serde_json::json!(realized));
            m.insert("unrealized_pnl".into(), serde_json::json!(unrealized));
        }
        v
    }

    /// A market-data tick.
    pub fn on_quote(&mut self, md: &MarketData, now: Nanos, out: &mut Vec<Output>) {
        let q = self.quotes.entry(md.symbol.clone()).or_default();
        if q.len() == QUOTES_KEPT {
            q.pop_front();
        }
        q.push_back((md.timestamp_us, md.bid, md.ask));
        self.drain(now, out);
    }

    /// A trading signal.
    pub fn on_signal(&mut self, signal: TradingSignal, now: Nanos, out: &mut Vec<Output>) {
        self.stats.signals += 1;
        self.pending.push_back((signal, now));
        self.drain(now, out);
    }

    /// Time passes: a head signal that waited [`QUOTE_WAIT`] is applied or dropped.
    pub fn on_timer(&mut self, now: Nanos, out: &mut Vec<Output>) {
        self.drain(now, out);
    }

    fn lookup(&mut self, symbol: &str, t: i64, waited: Nanos) -> Option<Match> {
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

    fn drain(&mut self, now: Nanos, out: &mut Vec<Output>) {
        while let Some((signal, since)) = self.pending.front() {
            let t = signal.timestamp_us;
            let symbol = signal.symbol.clone();
            if self.last_t.get(&symbol).is_some_and(|&last| t <= last) {
                self.stats.duplicate_signals += 1;
                self.pending.pop_front();
                continue;
            }
            let waited = now.saturating_sub(*since);
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
        self.positions.push(PositionState {
            symbol: symbol.to_owned(),
            book: Book::default(),
            mark: 0.0,
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
                // A market order fills at once, at the matched quote.
                let Some(mut order) = self.open.pop() else {
                    return;
                };
                order.status = OrderStatus::Filled as i32;
                out.push(Output::Order(order));
                self.stats.filled += 1;
                self.positions[i].book.fill(d, price);
                self.publish_position(i, t, true, out);
            }
        }
    }

    /// The reason of the first failing risk check.
    fn check(&mut self, i: usize, d: f64) -> Option<String> {
        let s = self.positions[i].symbol.clone();
        let q = self.positions[i].book.quantity;
        let after = q + d;
        let reducing = after.abs() < q.abs();
        let rej = &mut self.stats.rejections;
        if self.kill {
            rej.kill_switch += 1;
            return Some("kill switch engaged".into());
        }
        if self.paused_all {
            rej.paused += 1;
            return Some("trading paused".into());
        }
        if self.paused.contains(&s) {
            rej.paused += 1;
            return Some(format!("trading paused for {s}"));
        }
        let limit = self.limits.max_position_size;
        if after.abs() > limit && !reducing {
            rej.max_position_size += 1;
            return Some(format!(
                "max_position_size: position would be {}, limit {}",
                fmt_num(after),
                fmt_num(limit)
            ));
        }
        let mut pnl = 0.0;
        for p in &self.positions {
            pnl += p.book.realized + p.unrealized();
        }
        let loss = self.limits.max_daily_loss;
        if pnl <= -loss && !reducing {
            rej.max_daily_loss += 1;
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
        if !filled && p.book.quantity == 0.0 {
            return;
        }
        out.push(Output::Position(Position {
            symbol: p.symbol.clone(),
            quantity: p.book.quantity,
            avg_cost: p.book.avg_cost,
            current_price: p.mark,
            unrealized_pnl: p.unrealized(),
            realized_pnl: p.book.realized,
            last_updated_us: t,
        }));
    }

    /// A Position update for every symbol the engine holds a position in (flat ones
    /// included: their realized P&L), in order of first appearance, stamped with the last
    /// signal applied for it: what a restarted service publishes first, so subscribers that
    /// missed updates the crashed one never got out hold the recovered positions.
    pub fn position_snapshot(&self, out: &mut Vec<Output>) {
        for i in 0..self.positions.len() {
            let t = self
                .last_t
                .get(&self.positions[i].symbol)
                .copied()
                .unwrap_or(0);
            self.publish_position(i, t, true, out);
        }
    }

    /// A strategy command: (outcome, reason). Order updates it causes (the
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
        let now: Nanos = 0;
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
        let now: Nanos = 0;
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
        assert_eq!(e.stats.rejections.paused, 3);
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
        assert_eq!(e.stats.rejections.kill_switch, 2);
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
        let now: Nanos = 0;
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
        let mut p = Book::default();
        assert_eq!(p.fill(100.0, 10.0), 0.0);
        p.fill(100.0, 20.0);
        assert_eq!((p.quantity, p.avg_cost), (200.0, 15.0));
        assert_eq!(p.fill(-300.0, 30.0), 3000.0);
        assert_eq!((p.quantity, p.avg_cost, p.realized), (-100.0, 30.0, 3000.0));
        assert_eq!(p.fill(50.0, 20.0), 500.0);
        assert_eq!((p.quantity, p.avg_cost, p.realized), (-50.0, 30.0, 3500.0));
        assert_eq!(p.unrealized(40.0), -500.0);
        assert_eq!(p.fill(0.0, 99.0), 0.0);
        assert_eq!((p.quantity, p.avg_cost, p.realized), (-50.0, 30.0, 3500.0));
        assert_eq!(p.fill(50.0, 30.0), 0.0);
        assert_eq!((p.quantity, p.avg_cost, p.unrealized(1.0)), (0.0, 0.0, 0.0));
    }

    /// Every output of feeding both engines the same events.
    fn feed(e: &mut Engine, t: i64, s: &str, kind: SignalType, now: Nanos) -> Vec<Output> {
        let mut out = Vec::new();
        e.on_quote(&md(s, t, 99.0 + t as f64, 101.0 + t as f64), now, &mut out);
        e.on_signal(sig(s, t, kind), now, &mut out);
        out
    }

    fn command_with(kind: CommandType, symbol: &str, params: &[(&str, f64)]) -> StrategyCommand {
        StrategyCommand {
            r#type: kind as i32,
            symbol: symbol.into(),
            parameters: params.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn restored_state_goes_on_exactly() {
        let mut a = Engine::new(
            "run".into(),
            Limits {
                max_position_size: 1e9,
                max_daily_loss: 1e9,
                order_quantity: 100.0,
            },
        );
        let mut out = Vec::new();
        a.on_command(
            &command_with(
                CommandType::UpdateRiskLimits,
                "",
                &[("max_position_size", 250.0), ("order_quantity", 1.0 / 3.0)],
            ),
            &mut out,
        );
        feed(&mut a, 1, "A", SignalType::Buy, 0);
        feed(&mut a, 2, "B", SignalType::Sell, 0);
        feed(&mut a, 3, "A", SignalType::Buy, 0);
        feed(&mut a, 4, "B", SignalType::Hold, 0);
        a.on_command(&command_with(CommandType::PauseTrading, "C", &[]), &mut out);
        // A resting order, so that the kill switch after restore has one to cancel.
        a.open.push(Order {
            order_id: "run-99".into(),
            symbol: "A".into(),
            price: -0.0,
            status: OrderStatus::Submitted as i32,
            ..Default::default()
        });

        let text = a.state().to_json();
        let state = EngineState::from_json(&text).unwrap();
        assert_eq!(state, a.state());
        assert_eq!(state.to_json(), text);
        let mut b = Engine::restore(state).unwrap();
        assert_eq!(b.state(), a.state());
        assert_eq!(b.run_id(), "run");
        assert_eq!(b.state().orders_created, 3);
        // Every double comes back bit for bit, the sign of a zero included.
        let (pa, pb) = (a.state().positions, b.state().positions);
        for (x, y) in pa.iter().zip(&pb) {
            assert_eq!(x.book.avg_cost.to_bits(), y.book.avg_cost.to_bits());
            assert_eq!(x.book.quantity.to_bits(), y.book.quantity.to_bits());
        }
        assert!(b.state().open_orders[0].price.is_sign_negative());

        // The same events give the same outputs: order ids go on from run-4, the paused
        // symbol, the limits and the duplicate-signal guard hold.
        let steps: [(i64, &str, SignalType); 6] = [
            (3, "A", SignalType::Buy),
            (5, "A", SignalType::Buy),
            (5, "C", SignalType::Buy),
            (6, "B", SignalType::Buy),
            (7, "A", SignalType::Sell),
            (8, "A", SignalType::Buy),
        ];
        let mut first = Vec::new();
        for (t, s, k) in steps {
            let x = feed(&mut a, t, s, k, 10);
            assert_eq!(x, feed(&mut b, t, s, k, 10));
            first.extend(x);
        }
        let ids: Vec<String> = orders(&first).into_iter().map(|o| o.0).collect();
        assert_eq!(ids.first().map(String::as_str), Some("run-4"));
        assert!(orders(&first).iter().any(|o| o.2 == "trading paused for C"));
        let kill = command_with(CommandType::KillSwitch, "", &[]);
        let (mut oa, mut ob) = (Vec::new(), Vec::new());
        assert_eq!(a.on_command(&kill, &mut oa), b.on_command(&kill, &mut ob));
        assert_eq!(oa, ob);
        assert_eq!(oa.len(), 1);
        assert_eq!(a.summary(), b.summary());
        assert_eq!(a.pnl(), b.pnl());

        // A kill switch engaged before the snapshot is still engaged after it.
        let mut c = Engine::restore(EngineState::from_json(&a.state().to_json()).unwrap()).unwrap();
        assert!(c.killed());
        let x = feed(&mut c, 20, "A", SignalType::Buy, 20);
        assert_eq!(orders(&x)[1].2, "kill switch engaged");
        assert_eq!(
            orders(&x)[1].0,
            format!("run-{}", a.state().orders_created + 1)
        );
    }

    #[test]
    fn position_snapshot_is_every_position_as_last_published() {
        let mut e = Engine::new("run".into(), limits());
        let mut last: HashMap<String, Position> = HashMap::new();
        let steps = [
            (1, "A", SignalType::Buy),
            (2, "B", SignalType::Hold),
            (3, "A", SignalType::Sell),
            (4, "C", SignalType::Buy),
        ];
        for (t, s, k) in steps {
            for o in feed(&mut e, t, s, k, 0) {
                if let Output::Position(p) = o {
                    last.insert(p.symbol.clone(), p);
                }
            }
        }
        let e = Engine::restore(EngineState::from_json(&e.state().to_json()).unwrap()).unwrap();
        let mut out = Vec::new();
        e.position_snapshot(&mut out);
        let snap: Vec<Position> = out
            .into_iter()
            .map(|o| match o {
                Output::Position(p) => p,
                Output::Order(o) => panic!("an order in the snapshot: {o:?}"),
            })
            .collect();
        // Every symbol in order of first appearance, the flat ones (A closed, B never
        // traded) included; those published before are published again unchanged.
        let symbols: Vec<&str> = snap.iter().map(|p| p.symbol.as_str()).collect();
        assert_eq!(symbols, ["A", "B", "C"]);
        assert_eq!(snap[0], last["A"]);
        assert_eq!(snap[2], last["C"]);
        assert_eq!((snap[1].quantity, snap[1].last_updated_us), (0.0, 2));
    }

    #[test]
    fn state_json_keeps_non_finite_limits_and_refuses_bad_states() {
        let e = Engine::new(
            "r".into(),
            Limits {
                max_position_size: f64::INFINITY,
                max_daily_loss: f64::NAN,
                order_quantity: 1.0,
            },
        );
        let text = e.state().to_json();
        assert!(text.contains("\"max_position_size\":\"inf\""), "{text}");
        let back = EngineState::from_json(&text).unwrap();
        assert_eq!(back.limits.max_position_size, f64::INFINITY);
        assert!(back.limits.max_daily_loss.is_nan());
        let newer = text.replace("\"format\":1", "\"format\":2");
        assert!(EngineState::from_json(&newer)
            .unwrap_err()
            .contains("format 2"));
        assert!(EngineState::from_json("{}").is_err());
        let mut twice = e.state();
        let p = PositionState {
            symbol: "A".into(),
            book: Book::default(),
            mark: 1.0,
        };
        twice.positions = vec![p.clone(), p];
        assert!(Engine::restore(twice)
            .unwrap_err()
            .contains("two positions"));
    }
}
