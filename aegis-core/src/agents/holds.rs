//! What the in-flight model calls of each turn may spend. A turn's runs can call models at
//! the same time (boardroom members, parallel delegations); each reads the turn's spending
//! from the ledger before its call, which cannot see the calls still in flight. So every
//! call first holds what it may spend at most (its prompt plus its output limit, at the
//! dearest permitted model), and sees what the turn's other calls hold; the hold is
//! released when the call is over, by which time its ledger rows are queued.
//!
//! Order matters: a call takes its hold *before* it reads the ledger. A call that finished
//! earlier has queued its rows before releasing its hold, and the ledger read flushes
//! every row queued before it, so each finished call is counted, by its hold or by its
//! rows (sometimes by both, which errs on the safe side).

use std::{collections::HashMap, sync::Mutex};

use uuid::Uuid;

/// Tokens and micro-USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Amount {
    /// Tokens, input and output.
    pub tokens: i64,
    /// Micro-USD.
    pub cost: i64,
}

/// The holds of every turn with a call in flight.
#[derive(Debug, Default)]
pub(crate) struct TurnHolds {
    turns: Mutex<HashMap<Uuid, (Amount, usize)>>,
}

/// One call's hold on its turn's budget, released when dropped.
#[derive(Debug)]
pub(crate) struct Hold<'a> {
    holds: &'a TurnHolds,
    turn: Uuid,
    amount: Amount,
}

impl TurnHolds {
    /// Holds `amount` for a call of `turn`; also returns what the turn's other calls hold.
    pub fn hold(&self, turn: Uuid, amount: Amount) -> (Hold<'_>, Amount) {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        let (held, calls) = turns.entry(turn).or_default();
        let others = *held;
        held.tokens += amount.tokens;
        held.cost += amount.cost;
        *calls += 1;
        (Hold { holds: self, turn, amount }, others)
    }
}

impl Hold<'_> {
    /// Lowers the hold to `amount` (never raises it: a raise would not have been checked).
    pub fn lower_to(&mut self, amount: Amount) {
        let lowered = Amount { tokens: amount.tokens.min(self.amount.tokens), cost: amount.cost.min(self.amount.cost) };
        let mut turns = self.holds.turns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((held, _)) = turns.get_mut(&self.turn) {
            held.tokens -= self.amount.tokens - lowered.tokens;
            held.cost -= self.amount.cost - lowered.cost;
        }
        self.amount = lowered;
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut turns = self.holds.turns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((held, calls)) = turns.get_mut(&self.turn) {
            held.tokens -= self.amount.tokens;
            held.cost -= self.amount.cost;
            *calls -= 1;
            if *calls == 0 {
                turns.remove(&self.turn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_add_up_per_turn_and_go_with_their_calls() {
        let holds = TurnHolds::default();
        let (turn, other_turn) = (Uuid::new_v4(), Uuid::new_v4());
        let (mut a, before_a) = holds.hold(turn, Amount { tokens: 100, cost: 10 });
        assert_eq!(before_a, Amount::default());
        let (_c, before_c) = holds.hold(other_turn, Amount { tokens: 7, cost: 7 });
        assert_eq!(before_c, Amount::default(), "turns do not see each other");
        let (b, before_b) = holds.hold(turn, Amount { tokens: 50, cost: 5 });
        assert_eq!(before_b, Amount { tokens: 100, cost: 10 });
        a.lower_to(Amount { tokens: 60, cost: 20 });
        drop(b);
        let (_d, before_d) = holds.hold(turn, Amount::default());
        assert_eq!(before_d, Amount { tokens: 60, cost: 10 }, "lowered, never raised; b released");
        drop(a);
        drop(_d);
        assert!(!holds.turns.lock().unwrap().contains_key(&turn), "a turn without calls is forgotten");
    }
}
