//! The rules of the tradewire reference services, written once and without I/O: what
//! market-data publishes, what signal-bridge decides and what the execution engine does with
//! signals, quotes and commands. The Rust services call this crate directly, their Python
//! twins through `tradewire._rules` (crates/rules-py), so given the same configuration, seed
//! (or CSV), model and start order both publish the same messages, doubles bit for bit. The
//! services keep their process contract (arguments, configuration, sockets, output lines:
//! reference_services/SPEC.md). Time is an input: nothing here reads a clock.
//!
//! # market-data ([`walk`])
//!
//! **Random numbers: splitmix64.** All arithmetic modulo 2^64:
//!
//! ```text
//! state = seed (as u64; a negative seed is taken modulo 2^64)
//! next_u64():  state = state + 0x9E3779B97F4A7C15
//!              z = state
//!              z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//!              z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//!              return z ^ (z >> 31)
//! uniform():   (next_u64() >> 11) * 2^-53          # exact double in [0, 1)
//! ```
//!
//! **Random walk.** Symbols `s_0 .. s_{n-1}` in configured order; tick `i` (0-based, over
//! all symbols) is for `s_{i mod n}`. Each symbol starts with `mid = start_price`,
//! `ret = 0.0`, `regime = 0`, `ticks = 0`. A tick of symbol `s`, in this order:
//!
//! ```text
//! if s.ticks mod 200 == 0:                 # regime switch, every 200 ticks of the symbol
//!     s.regime = floor(uniform() * 3.0) - 1.0          # -1, 0 or +1
//! u1, u2, u3, u4 = uniform(), uniform(), uniform(), uniform()
//! shock = (((u1 + u2) + u3) + u4 - 2.0) * 1.7320508075688772 * volatility
//! s.ret = 0.3 * s.ret + 0.0006 * s.regime + shock
//! s.mid = s.mid * (1.0 + s.ret)            # reset to start_price if <= 0 or not finite
//! half  = s.mid * (0.5 + uniform()) * 0.0001
//! bid, ask = s.mid - half, s.mid + half
//! volume   = floor(1000.0 * (1.0 + abs(s.ret) * 200.0) * (0.5 + uniform()))
//! bid_size = 100.0 * (floor(uniform() * 10.0) + 1.0)
//! ask_size = 100.0 * (floor(uniform() * 10.0) + 1.0)
//! s.ticks += 1
//! ```
//!
//! (`shock` has standard deviation `volatility`; the drift regimes and AR(1) returns mirror
//! `tradewire.ml.data.synthetic_market`, which the model is trained on.) The message:
//! `MarketData{symbol, price: mid, volume, timestamp_us, exchange: "SIM", bid, ask,
//! bid_size, ask_size}`.
//!
//! **Simulated clock.** With `sim_start_us > 0` tick `i` is stamped
//! `sim_start_us + i * step`, `step = floor(1e6 / rate)` µs (at least 1; 1 when
//! `rate = 0`), which makes the whole pipeline deterministic; otherwise the service stamps
//! ticks with its wall clock.
//!
//! **CSV rows.** A header line naming columns, then one tick per line, comma-separated, no
//! quoting, cells trimmed, column names case-insensitive (the first of a repeated name
//! counts). Required: `symbol`, `price`. Optional: `volume` (default 0), `timestamp_us`
//! (default: the service's clock), `bid`, `ask` (default `price`), `bid_size`, `ask_size`
//! (default 0), `exchange` (default `"CSV"`). Blank lines and lines starting with `#` are
//! skipped; numbers are decimal doubles and must be finite; a symbol may not be empty or
//! start with `~`. A bad line is an error naming the source and line number.
//!
//! # signal-bridge ([`signal`])
//!
//! From the model's float32 probabilities `p = (p_buy, p_hold, p_sell)` and
//! `t = signal.threshold`, compared as doubles (`double(p_x) > t`), with `m = max(p)`:
//! `BUY` if `p_buy == m` and `p_buy > t`; else `SELL` if `p_sell == m` and `p_sell > t`;
//! else `HOLD`. `confidence = double(m)`.
//!
//! # execution-engine ([`engine`])
//!
//! Signals, quotes, commands and timer ticks are applied one at a time, in arrival order.
//!
//! **Quotes and signal alignment.** For each symbol the engine keeps the last 4096 quotes
//! `(timestamp_us, bid, ask)`. A signal for `s` with timestamp `T` (its tick's timestamp)
//! is matched with the newest quote of `s` whose timestamp is `<= T`. Signals wait in one
//! FIFO queue: the head is applied when its quote is known (the newest quote of `s` has a
//! timestamp `>= T`), so the result never depends on whether the tick or the signal arrived
//! first. If no quote `<= T` is held but newer ones are, the oldest held quote is used
//! (`stale_quotes`). A head that waited 1 s (by the monotonic time the service passes in)
//! is applied against the newest quote of `s` (`stale_quotes`) or, with none, dropped
//! (`dropped_signals`). A signal whose `T` is not greater than the last applied `T` of its
//! symbol is ignored (`duplicate_signals`): a restarted bridge or a replay never causes a
//! second order.
//!
//! Applying a signal: `mark[s] = (bid + ask) / 2.0` (the matched quote). `HOLD`: no order.
//! `BUY`/`SELL`: one order. Then, if an order filled or `position[s].quantity != 0`, a
//! Position update for `s` is published.
//!
//! **Orders.** `n` counts the orders of the run (1, 2, ...). Every update of one order
//! carries the same `order_id = "<run>-<n>"`, `client_order_id = "<symbol>@<T>"`, `symbol`,
//! `side`, `quantity = order_quantity` (at creation), `price =` the matched quote's `ask`
//! for BUY, `bid` for SELL, `type = MARKET`, `timestamp_us = T`. Updates, in this order at
//! once: `CREATED`, then either `REJECTED` with the reason of the first failing risk check,
//! or `SUBMITTED` and `FILLED` (the whole quantity at `price`).
//!
//! **Risk checks, in this order.** `q` = current quantity of `s`, `d = +quantity` (BUY) or
//! `-quantity` (SELL), `after = q + d`; *reducing* means `abs(after) < abs(q)`.
//!
//! 1. kill switch engaged: `"kill switch engaged"`;
//! 2. paused for all symbols: `"trading paused"`; paused for `s`: `"trading paused for <s>"`;
//! 3. `abs(after) > max_position_size` and not reducing:
//!    `"max_position_size: position would be <after>, limit <max_position_size>"`;
//! 4. `pnl <= -max_daily_loss` and not reducing:
//!    `"max_daily_loss: daily P&L <pnl>, limit -<max_daily_loss>"`, where `pnl` is the sum
//!    over symbols (in order of first appearance) of realized + unrealized P&L at each
//!    symbol's current mark. "Daily" is the engine run.
//!
//! **Positions, by average cost** ([`engine::Book`], also what `tradewire.persistence`
//! values recorded fills with). Quantity `q`, average cost `c`, realized `R`, all 0.0 at
//! start. A fill of signed quantity `d` (`x = abs(d)`, 0 changes nothing) at price `p`:
//!
//! ```text
//! if q == 0 or (q > 0) == (d > 0):           # open or add
//!     q' = q + d;  c = (abs(q) * c + x * p) / abs(q')
//! else:                                       # reduce, close or flip
//!     closed = min(abs(q), x)
//!     R = R + closed * (p - c) * (1.0 if q > 0 else -1.0)
//!     q' = q + d
//!     c = 0.0 if q' == 0 else (p if (q' > 0) != (q > 0) else c)
//! q = q'
//! ```
//!
//! Position update: `Position{symbol, quantity: q, avg_cost: c, current_price: mark[s],
//! unrealized_pnl: (0.0 if q == 0 else q * (mark[s] - c)), realized_pnl: R,
//! last_updated_us: T}`.
//!
//! **Commands** (outcome and reason of the `CommandAck`; every command counts in
//! `commands`, none publishes a position):
//!
//! | type | effect | ack |
//! |---|---|---|
//! | `UPDATE_RISK_LIMITS` | `parameters` keys among `max_position_size`, `max_daily_loss`, `order_quantity`, every value finite and `> 0`; all or nothing | APPLIED; REJECTED `"no parameters"`, `"unknown parameter <k> (known: max_daily_loss, max_position_size, order_quantity)"` or `"<k> must be a finite number > 0, got <v>"` (keys checked in sorted order) |
//! | `PAUSE_TRADING` | `symbol` empty: pause all; else pause `symbol` | APPLIED |
//! | `RESUME_TRADING` | `symbol` empty: clear every pause and the kill switch; else clear that symbol's pause | APPLIED; when a symbol resume leaves trading stopped, reason `"kill switch still engaged"` (checked first) or `"trading still paused"` |
//! | `KILL_SWITCH` | engage: open orders are cancelled (a `CANCELLED` update each, in submission order, before the ack) and every new order is rejected until `RESUME_TRADING` for all symbols | APPLIED, `"kill switch engaged; <k> open orders cancelled"` |
//! | any other value | none | REJECTED `"unknown command type <n>"` |
//!
//! An order is *open* from its `SUBMITTED` update until it is `FILLED` or `CANCELLED`, and
//! `k` is the size of that set when the kill switch is applied. Orders are `MARKET` and
//! fill in the step that submits them, and a command is applied between two events, so in
//! the reference engine `k` is 0 and no `CANCELLED` update is published: the kill switch
//! rejects every order from the next signal applied. An engine with resting orders would
//! cancel them there; the unit tests place an open order directly to exercise that path.
//!
//! **State.** [`engine::Engine::state`] is everything the engine decided (positions, open
//! orders, realized P&L, the order sequence, the limits, pauses, the kill switch, the last
//! signal per symbol, the counters); [`engine::Engine::restore`] goes on from it exactly.
//!
//! # Numbers in text
//!
//! Doubles in reasons ([`fmt_num`]) are the shortest decimal that reads back to the same
//! double, plain for `1e-4 <= |x| < 1e16` (with `.0` when integral, e.g. `1100.0`), else
//! `<mantissa>e<exponent>` with no `+` and no leading zeros (`1e-5`, `1.5e20`): Rust's
//! `{:?}`.

pub mod engine;
pub mod signal;
pub mod walk;

pub use engine::{Book, Engine, EngineState, Limits, Nanos, Output};
pub use signal::decide;
pub use walk::{parse_csv, sim_step_us, sim_timestamp_us, RandomWalk, SplitMix64};

/// A double as text: shortest round-trip decimal, Rust's `{:?}`.
pub fn fmt_num(x: f64) -> String {
    format!("{x:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_text() {
        assert_eq!(fmt_num(1100.0), "1100.0");
        assert_eq!(fmt_num(-10234.567), "-10234.567");
        assert_eq!(fmt_num(1e-5), "1e-5");
        assert_eq!(fmt_num(0.0001), "0.0001");
        assert_eq!(fmt_num(1.5e20), "1.5e20");
        assert_eq!(fmt_num(1e16), "1e16");
        assert_eq!(fmt_num(9999999999999998.0), "9999999999999998.0");
        assert_eq!(fmt_num(0.1 + 0.2), "0.30000000000000004");
    }
}
