//! R10 Closing and the kitchen report (R13 diets counted apart).
//!
//! At each cutoff the day is closed: every child's status that day is
//! frozen, each child present (normal or plain meal) is charged once, and
//! the kitchen report built from the frozen statuses is final. The store
//! makes it idempotent (one closing and one charge per child and day) and
//! does the freezing and charging set-based in SQL for speed (see
//! `store::closing`): a child present ([`DayStatus::is_present`]: booked or
//! plain meal) is charged the child's price where set, else the ente's.
//! Here are the pure parts: the statuses and the kitchen counts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::Diet;
use super::days::DayStatus;
use super::ids::{ClassId, SchoolId};

/// One child's frozen status on a closed (or, for a preview, open) day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendance {
    pub school: SchoolId,
    pub class: ClassId,
    pub diet: Diet,
    pub status: DayStatus,
}

/// Counts for one class or school.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Meals to cook: children present, plain meals included.
    pub meals: u32,
    /// Of which plain meals (pasto in bianco).
    pub plain_meals: u32,
    /// Children with service that day who will not eat (absent or suspended).
    pub absences: u32,
    /// Special diets among the meals, by kind.
    pub diets: BTreeMap<String, u32>,
}

impl Counts {
    fn add(&mut self, a: &Attendance) {
        match a.status {
            DayStatus::Booked | DayStatus::PlainMeal => {
                self.meals += 1;
                if a.status == DayStatus::PlainMeal {
                    self.plain_meals += 1;
                }
                if a.diet.is_special() {
                    *self.diets.entry(a.diet.as_str().to_string()).or_default() += 1;
                }
            }
            DayStatus::Absent | DayStatus::Suspended => self.absences += 1,
            DayStatus::NoService(_) => {}
        }
    }

    fn merge(&mut self, other: &Counts) {
        self.meals += other.meals;
        self.plain_meals += other.plain_meals;
        self.absences += other.absences;
        for (kind, n) in &other.diets {
            *self.diets.entry(kind.clone()).or_default() += n;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassReport {
    pub class: ClassId,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchoolReport {
    pub school: SchoolId,
    pub classes: Vec<ClassReport>,
    pub totals: Counts,
}

/// The kitchen report (centro cottura) of one day, per school and class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KitchenReport {
    pub date: NaiveDate,
    /// True once the day is closed: the counts will not change any more.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub schools: Vec<SchoolReport>,
    pub totals: Counts,
}

impl KitchenReport {
    pub fn build<'a>(
        date: NaiveDate,
        is_final: bool,
        attendances: impl IntoIterator<Item = &'a Attendance>,
    ) -> KitchenReport {
        let mut by_school: BTreeMap<&SchoolId, BTreeMap<&ClassId, Counts>> = BTreeMap::new();
        for a in attendances {
            if matches!(a.status, DayStatus::NoService(_)) {
                continue;
            }
            by_school
                .entry(&a.school)
                .or_default()
                .entry(&a.class)
                .or_default()
                .add(a);
        }
        let mut totals = Counts::default();
        let schools = by_school
            .into_iter()
            .map(|(school, classes)| {
                let mut school_totals = Counts::default();
                let classes = classes
                    .into_iter()
                    .map(|(class, counts)| {
                        school_totals.merge(&counts);
                        ClassReport {
                            class: class.clone(),
                            counts,
                        }
                    })
                    .collect();
                totals.merge(&school_totals);
                SchoolReport {
                    school: school.clone(),
                    classes,
                    totals: school_totals,
                }
            })
            .collect();
        KitchenReport {
            date,
            is_final,
            schools,
            totals,
        }
    }
}
