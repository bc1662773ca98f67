//! Keys: barge-in, type-ahead, digit collection and menus, and the
//! repeats after a silence or a wrong key.

use std::sync::Arc;
use std::time::Instant;

use super::{MAX_TYPE_AHEAD, Retry, Session};
use crate::ivr::actions::Key;
use crate::ivr::dialplan::{Item, State, Variable};

impl Session {
    pub(super) fn on_key(&mut self, now: Instant, key: Key) {
        if self.ended {
            return;
        }
        let plan = Arc::clone(&self.plan);
        match plan.state(&self.state) {
            Some(State::Play(play)) => {
                if let Some(lang) = play.language_keys.get(&key) {
                    self.lang = *lang;
                    self.record.language = *lang;
                    if self.playing.is_some() {
                        self.stop_playback();
                    }
                    self.enter(now, play.next.clone());
                    return;
                }
                self.keep(key);
                if play.barge_in && self.playing.is_some() {
                    self.stop_playback();
                    self.enter(now, play.next.clone());
                }
            }
            Some(State::Action(_)) => self.keep(key),
            Some(State::Collect(_) | State::Menu(_)) => {
                if self.playing.is_some() {
                    self.stop_playback();
                }
                self.keep(key);
                if self.drain_type_ahead(now) {
                    // A key that means nothing here (`*` in a code) stopped
                    // the prompt: wait for the answer.
                    self.wait_for_input(now);
                }
            }
            Some(State::HangUp(_)) | None => {}
        }
    }

    /// Feeds kept keys to the current `collect` or `menu`. True when the
    /// state still waits for input and nothing is playing or timing: the
    /// caller then plays its prompts.
    pub(super) fn drain_type_ahead(&mut self, now: Instant) -> bool {
        let entered = self.entered;
        while entered == self.entered && !self.ended && self.playing.is_none() {
            let Some(key) = self.type_ahead.pop_front() else {
                break;
            };
            self.feed(now, key);
        }
        entered == self.entered && !self.ended && self.playing.is_none() && self.timer.is_none()
    }

    /// One key for the current `collect` or `menu`.
    pub(super) fn feed(&mut self, now: Instant, key: Key) {
        let plan = Arc::clone(&self.plan);
        match plan.state(&self.state) {
            Some(State::Collect(c)) => {
                if Some(key) == c.terminator {
                    self.finish_collect(now);
                } else if key.is_digit() {
                    self.digits.push(key.as_char());
                    if self.digits.len() >= c.max_digits {
                        self.finish_collect(now);
                    } else {
                        self.timer = Some(now + c.inter_digit_timeout);
                    }
                }
                // `*` and A–D mean nothing in a number: ignored.
            }
            Some(State::Menu(m)) => match m.keys.get(&key) {
                Some(target) => self.enter(now, target.clone()),
                None => self.retry(now, Retry::Invalid),
            },
            Some(State::Play(_) | State::Action(_) | State::HangUp(_)) | None => self.keep(key),
        }
    }

    pub(super) fn finish_collect(&mut self, now: Instant) {
        self.timer = None;
        let plan = Arc::clone(&self.plan);
        let Some(State::Collect(c)) = plan.state(&self.state) else {
            return;
        };
        if self.digits.is_empty() && !c.allow_empty {
            self.retry(now, Retry::NoInput);
            return;
        }
        let digits = std::mem::take(&mut self.digits);
        match c.into {
            Variable::Code => self.vars.code_digits = Some(digits),
            Variable::Date => self.vars.date_digits = Some(digits),
        }
        self.enter(now, c.next.clone());
    }

    /// A silence or a wrong key: say so and ask again, or give up.
    pub(super) fn retry(&mut self, now: Instant, why: Retry) {
        self.timer = None;
        self.type_ahead.clear();
        self.digits.clear();
        self.tries += 1;
        let plan = Arc::clone(&self.plan);
        let (tries, on_no_input, no_input, invalid) = match plan.state(&self.state) {
            Some(State::Collect(c)) => (c.tries, &c.on_no_input, &c.no_input, &c.no_input),
            Some(State::Menu(m)) => (m.tries, &m.on_no_input, &m.no_input, &m.invalid),
            Some(State::Play(_) | State::Action(_) | State::HangUp(_)) | None => return,
        };
        if self.tries >= tries {
            self.enter(now, on_no_input.clone());
            return;
        }
        let before = match why {
            Retry::NoInput => no_input,
            Retry::Invalid => invalid,
        };
        self.prompt(now, before);
    }

    /// Plays `before` then the current state's prompts; with nothing to
    /// play, starts waiting at once.
    pub(super) fn prompt(&mut self, now: Instant, before: &[Item]) {
        let plan = Arc::clone(&self.plan);
        let (prompts, wait) = match plan.state(&self.state) {
            Some(State::Collect(c)) => (&c.prompts, c.first_digit_timeout),
            Some(State::Menu(m)) => (&m.prompts, m.timeout),
            Some(State::Play(_) | State::Action(_) | State::HangUp(_)) | None => return,
        };
        if !self.play(before, prompts) {
            // Nothing to say: wait at once.
            self.timer = Some(now + wait);
        }
    }

    /// Starts the timer of the current question, unless one runs.
    pub(super) fn wait_for_input(&mut self, now: Instant) {
        if self.timer.is_some() {
            return;
        }
        let wait = match self.plan.state(&self.state) {
            Some(State::Collect(c)) if self.digits.is_empty() => c.first_digit_timeout,
            Some(State::Collect(c)) => c.inter_digit_timeout,
            Some(State::Menu(m)) => m.timeout,
            Some(State::Play(_) | State::Action(_) | State::HangUp(_)) | None => return,
        };
        self.timer = Some(now + wait);
    }

    pub(super) fn keep(&mut self, key: Key) {
        if self.type_ahead.len() < MAX_TYPE_AHEAD {
            self.type_ahead.push_back(key);
        }
    }

    pub(super) fn asks_for_keys(&self) -> bool {
        matches!(
            self.plan.state(&self.state),
            Some(State::Collect(_) | State::Menu(_))
        )
    }
}
