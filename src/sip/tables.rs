//! The endpoint's server transactions, each with the source that opened
//! it, counted per source in step with the table (`sip::limits`).

use std::collections::HashMap;
use std::net::IpAddr;

use super::limits::SourceCounts;
use super::transaction::{ServerTransaction, TransactionKey};

#[derive(Debug, Default)]
pub(crate) struct TransactionTable {
    by_key: HashMap<TransactionKey, (ServerTransaction, IpAddr)>,
    per_source: SourceCounts,
}

impl TransactionTable {
    pub(crate) fn get(&self, key: &TransactionKey) -> Option<&ServerTransaction> {
        self.by_key.get(key).map(|(tx, _)| tx)
    }

    pub(crate) fn get_mut(&mut self, key: &TransactionKey) -> Option<&mut ServerTransaction> {
        self.by_key.get_mut(key).map(|(tx, _)| tx)
    }

    /// A new transaction opened by a request from `source`.
    pub(crate) fn insert(&mut self, key: TransactionKey, tx: ServerTransaction, source: IpAddr) {
        if let Some((_, old)) = self.by_key.insert(key, (tx, source)) {
            self.per_source.remove(old);
        }
        self.per_source.add(source);
    }

    pub(crate) fn remove(&mut self, key: &TransactionKey) {
        if let Some((_, source)) = self.by_key.remove(key) {
            self.per_source.remove(source);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Transactions `source` has open.
    pub(crate) fn opened_by(&self, source: IpAddr) -> usize {
        self.per_source.of(source)
    }

    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TransactionKey, &ServerTransaction)> {
        self.by_key.iter().map(|(k, (tx, _))| (k, tx))
    }
}
