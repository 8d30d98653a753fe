//! The KeyPackages the Delivery Service handed out (`/keypackages NAME`):
//! which device each is of, so that a Welcome naming it reaches that
//! device and the relay knows the device is in the group.
//!
//! It owns the bounds, which hold against a member who asks over and over
//! (uploading fresh KeyPackages of its own and taking them back, say):
//! - each asker (the member who asked) holds at most
//!   [`MAX_HANDED_PER_ASKER`] handouts; past that its own oldest goes;
//! - all together hold at most [`MAX_HANDED_OUT`]; when full, the oldest
//!   handout of the asker holding the most goes (the asker itself when it
//!   holds as many as anyone).
//!
//! So one member's asking only ever pushes out its own handouts, or those
//! of a member holding more than it; a member holding fewer than the
//! largest share keeps every one. A KeyPackage handed to two askers is kept
//! while either holds it. Handouts kept by a relay before askers were
//! recorded count as one asker's (`None`), the first to go when full.

use std::collections::{HashMap, VecDeque};

use eaxchat_proto::name::Name;

use super::{DeviceKey, MAX_HANDED_OUT};

/// KeyPackages handed out to one asker whose Welcome the relay still
/// routes: room for a member to fetch the KeyPackages of a thousand
/// devices before committing their Adds, a quarter of
/// [`MAX_HANDED_OUT`] (fairness between askers does not rest on it: when
/// all are held, the largest holder gives way).
pub const MAX_HANDED_PER_ASKER: usize = 1024;

/// Who was handed a KeyPackage: a member, or `None` for handouts read
/// from a state that did not record it.
pub(super) type Asker = Option<Name>;

/// Every handout, by KeyPackageRef and by asker.
#[derive(Debug, Default)]
pub(super) struct Handouts {
    /// KeyPackageRef → its device, and how many askers hold it.
    by_ref: HashMap<Box<[u8]>, (DeviceKey, u32)>,
    /// Each asker's handouts, oldest first.
    by_asker: HashMap<Asker, VecDeque<Box<[u8]>>>,
    /// Handouts held in all (an asker and a KeyPackageRef each).
    total: usize,
}

impl Handouts {
    /// The device KeyPackageRef `reference` was handed out of.
    pub(super) fn device(&self, reference: &[u8]) -> Option<DeviceKey> {
        self.by_ref.get(reference).map(|&(device, _)| device)
    }

    /// Notes that `asker` was handed the KeyPackage `reference` of
    /// `device`, within the bounds (module docs).
    pub(super) fn hand(&mut self, asker: &Asker, reference: &[u8], device: DeviceKey) {
        let held = self.by_asker.get(asker);
        if held.is_some_and(|held| held.iter().any(|r| **r == *reference)) {
            return;
        }
        while self
            .by_asker
            .get(asker)
            .is_some_and(|held| held.len() >= MAX_HANDED_PER_ASKER)
        {
            self.drop_oldest_of(asker);
        }
        self.keep(asker, reference, device);
    }

    /// Keeps a handout read back from the caller's state: only the
    /// bound in all is applied (a state of the old format holds up to
    /// [`MAX_HANDED_OUT`] under one asker).
    pub(super) fn restore(&mut self, asker: &Asker, reference: &[u8], device: DeviceKey) {
        let held = self.by_asker.get(asker);
        if !held.is_some_and(|held| held.iter().any(|r| **r == *reference)) {
            self.keep(asker, reference, device);
        }
    }

    fn keep(&mut self, asker: &Asker, reference: &[u8], device: DeviceKey) {
        while self.total >= MAX_HANDED_OUT {
            let Some(largest) = self.largest(asker) else {
                break;
            };
            self.drop_oldest_of(&largest);
        }
        let entry = self.by_ref.entry(reference.into()).or_insert((device, 0));
        entry.0 = device;
        entry.1 += 1;
        self.by_asker
            .entry(asker.clone())
            .or_default()
            .push_back(reference.into());
        self.total += 1;
    }

    /// The asker holding the most handouts; `asker` if it holds as many.
    fn largest(&self, asker: &Asker) -> Option<Asker> {
        let own = self.by_asker.get(asker).map_or(0, VecDeque::len);
        let (other, most) = self
            .by_asker
            .iter()
            .map(|(other, held)| (other, held.len()))
            .max_by_key(|&(_, len)| len)?;
        Some(if own >= most && own > 0 {
            asker.clone()
        } else {
            other.clone()
        })
    }

    fn drop_oldest_of(&mut self, asker: &Asker) {
        let Some(held) = self.by_asker.get_mut(asker) else {
            return;
        };
        let oldest = held.pop_front();
        if held.is_empty() {
            self.by_asker.remove(asker);
        }
        let Some(oldest) = oldest else {
            return;
        };
        self.total -= 1;
        if let Some(entry) = self.by_ref.get_mut(&oldest) {
            entry.1 -= 1;
            if entry.1 == 0 {
                self.by_ref.remove(&oldest);
            }
        }
    }

    /// Every handout `(asker, reference, device)`, the askers in name
    /// order (`None` first), each one's oldest first: for the codec.
    pub(super) fn all(&self) -> Vec<(&Asker, &[u8], DeviceKey)> {
        let mut askers: Vec<_> = self.by_asker.iter().collect();
        askers.sort_by(|a, b| a.0.cmp(b.0));
        askers
            .into_iter()
            .flat_map(|(asker, held)| {
                held.iter().map(move |reference| {
                    let device = self.device(reference).unwrap_or([0; 32]);
                    (asker, &**reference, device)
                })
            })
            .collect()
    }

    /// How many handouts are held in all.
    pub(super) fn len(&self) -> usize {
        self.total
    }

    /// How many `asker` holds.
    #[cfg(test)]
    fn held_by(&self, asker: &Asker) -> usize {
        self.by_asker.get(asker).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asker(name: &str) -> Asker {
        Some(Name::new(name).expect("a name"))
    }

    fn reference(asker: u8, n: usize) -> Vec<u8> {
        let mut r = vec![asker];
        r.extend_from_slice(&(n as u64).to_le_bytes());
        r
    }

    #[test]
    fn an_asker_over_its_share_loses_only_its_own_oldest() {
        let mut handouts = Handouts::default();
        handouts.hand(&asker("alice"), &reference(1, 0), [1; 32]);
        for n in 0..MAX_HANDED_PER_ASKER + 10 {
            handouts.hand(&asker("carol"), &reference(3, n), [3; 32]);
        }
        assert_eq!(handouts.held_by(&asker("carol")), MAX_HANDED_PER_ASKER);
        assert_eq!(handouts.device(&reference(1, 0)), Some([1; 32]));
        assert_eq!(handouts.device(&reference(3, 0)), None, "carol's oldest");
        assert_eq!(handouts.device(&reference(3, 10)), Some([3; 32]));
        assert_eq!(handouts.len(), MAX_HANDED_PER_ASKER + 1);
    }

    #[test]
    fn when_full_the_largest_holder_gives_way() {
        let mut handouts = Handouts::default();
        let askers = MAX_HANDED_OUT / MAX_HANDED_PER_ASKER;
        for a in 0..askers {
            let name = asker(&format!("m{a}"));
            for n in 0..MAX_HANDED_PER_ASKER {
                handouts.hand(&name, &reference(a as u8, n), [a as u8; 32]);
            }
        }
        assert_eq!(handouts.len(), MAX_HANDED_OUT);
        // A newcomer's handouts push out the full askers' oldest, one by
        // one, never its own; then the full asker asking pushes out its own.
        handouts.hand(&asker("new"), &reference(200, 0), [200; 32]);
        assert_eq!(handouts.len(), MAX_HANDED_OUT);
        assert_eq!(handouts.held_by(&asker("new")), 1);
        handouts.hand(&asker("m0"), &reference(0, 9999), [0; 32]);
        assert_eq!(handouts.len(), MAX_HANDED_OUT);
        assert_eq!(
            handouts.held_by(&asker("new")),
            1,
            "the smaller holder keeps"
        );
        assert_eq!(handouts.device(&reference(200, 0)), Some([200; 32]));
    }

    #[test]
    fn a_package_handed_to_two_askers_stays_while_either_holds_it() {
        let mut handouts = Handouts::default();
        let shared = reference(9, 0);
        handouts.hand(&asker("alice"), &shared, [9; 32]);
        handouts.hand(&asker("carol"), &shared, [9; 32]);
        handouts.hand(&asker("carol"), &shared, [9; 32]);
        assert_eq!(handouts.len(), 2, "once per asker");
        for n in 1..=MAX_HANDED_PER_ASKER {
            handouts.hand(&asker("carol"), &reference(3, n), [3; 32]);
        }
        assert_eq!(handouts.device(&shared), Some([9; 32]), "alice holds it");
        assert_eq!(handouts.held_by(&asker("alice")), 1);
    }
}
