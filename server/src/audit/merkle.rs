//! The Merkle tree over the chain's entry hashes (RFC 9162 §2.1: leaf `SHA-256(0x00 ‖ d)`, node
//! `SHA-256(0x01 ‖ left ‖ right)`): the root a checkpoint signs, the frontier that grows it one
//! entry at a time, and the subtree hashes that stand in for entries a filtered export leaves out.

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

fn leaf(entry_hash: &Digest) -> Digest {
    Sha256::new().chain_update([0u8]).chain_update(entry_hash).finalize().into()
}

fn node(left: &Digest, right: &Digest) -> Digest {
    Sha256::new().chain_update([1u8]).chain_update(left).chain_update(right).finalize().into()
}

/// An entry hash as stored (64 hex digits), or `None` when it is not one.
pub fn digest(hex_text: &str) -> Option<Digest> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

/// The roots of the perfect subtrees that make up a tree of `size` leaves, largest (leftmost)
/// first, each with its height: enough to add leaves or whole aligned subtrees and to compute
/// the root, in O(log size) space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<(u32, Digest)>,
    /// The entry hash of the last leaf, when a leaf (not a subtree) was added last.
    last_leaf: Option<Digest>,
}

impl Frontier {
    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The entry hash of the last leaf added, if the last addition was a leaf.
    pub fn last_leaf(&self) -> Option<&Digest> {
        self.last_leaf.as_ref()
    }

    /// Adds the next entry.
    pub fn push(&mut self, entry_hash: Digest) {
        self.push_subtree(0, leaf(&entry_hash));
        self.last_leaf = Some(entry_hash);
    }

    /// Adds a perfect subtree of `2^height` leaves with root `hash`. The tree must end on a
    /// multiple of its width (the subtree is aligned), else nothing is added and this is false.
    pub fn push_subtree(&mut self, height: u32, hash: Digest) -> bool {
        let Some(width) = 1u64.checked_shl(height).filter(|w| self.size.is_multiple_of(*w)) else {
            return false;
        };
        let (mut height, mut hash) = (height, hash);
        while let Some(&(h, left)) = self.subtrees.last().filter(|(h, _)| *h == height) {
            self.subtrees.pop();
            hash = node(&left, &hash);
            height = h + 1;
        }
        self.subtrees.push((height, hash));
        self.size += width;
        self.last_leaf = None;
        true
    }

    /// The tree's root (RFC 9162's MTH), `None` for the empty tree.
    pub fn root(&self) -> Option<Digest> {
        let mut subtrees = self.subtrees.iter().rev();
        let mut root = subtrees.next()?.1;
        for (_, left) in subtrees {
            root = node(left, &root);
        }
        Some(root)
    }

    /// The root as hex, as checkpoints carry it.
    pub fn root_hex(&self) -> Option<String> {
        self.root().map(hex::encode)
    }
}

/// A perfect, aligned subtree: leaves `start..start + 2^height` (0-based) and their root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtree {
    pub start: u64,
    pub height: u32,
    pub hash: Digest,
}

/// The root of a perfect subtree over `leaves` (entry hashes; a power of two of them).
fn perfect_root(leaves: &[Digest]) -> Digest {
    if leaves.len() == 1 {
        return leaf(&leaves[0]);
    }
    let (left, right) = leaves.split_at(leaves.len() / 2);
    node(&perfect_root(left), &perfect_root(right))
}

/// The subtrees that stand in for the leaves of `leaves` (every entry hash of the tree, in
/// order) that `kept` (ascending 0-based indexes) leaves out: each run of left-out leaves split
/// into the fewest aligned perfect subtrees that never span a `cut` (a tree size at which a
/// checkpoint signs the root, so a verifier adding leaves and subtrees in order passes through it).
pub fn cover(leaves: &[Digest], kept: &[u64], cuts: &[u64]) -> Vec<Subtree> {
    let mut out = Vec::new();
    let mut kept = kept.iter().copied().peekable();
    let mut cuts = cuts.iter().copied().peekable();
    let mut at = 0u64;
    let size = leaves.len() as u64;
    while at < size {
        if kept.peek() == Some(&at) {
            kept.next();
            at += 1;
            continue;
        }
        while kept.peek().is_some_and(|k| *k < at) {
            kept.next();
        }
        while cuts.peek().is_some_and(|c| *c <= at) {
            cuts.next();
        }
        let end = kept.peek().copied().unwrap_or(size).min(cuts.peek().copied().unwrap_or(size)).min(size);
        while at < end {
            let mut height = at.trailing_zeros().min(63);
            while at + (1u64 << height) > end {
                height -= 1;
            }
            let width = 1u64 << height;
            let hash = perfect_root(&leaves[at as usize..(at + width) as usize]);
            out.push(Subtree { start: at, height, hash });
            at += width;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9162's recursive definition, for reference.
    fn mth(leaves: &[Digest]) -> Digest {
        if leaves.len() == 1 {
            return leaf(&leaves[0]);
        }
        let k = leaves.len().next_power_of_two() / 2;
        node(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    fn leaves(n: u8) -> Vec<Digest> {
        (0..n).map(|i| Sha256::digest([i]).into()).collect()
    }

    #[test]
    fn the_frontier_grows_to_the_rfc_root_at_every_size() {
        let all = leaves(37);
        let mut f = Frontier::default();
        assert_eq!(f.root(), None);
        for (i, l) in all.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.root(), Some(mth(&all[..=i])), "size {}", i + 1);
        }
        assert_eq!(f.size(), 37);
        assert_eq!(f.last_leaf(), Some(&all[36]));
    }

    #[test]
    fn subtrees_covering_left_out_leaves_give_the_same_root_at_every_cut() {
        let all = leaves(45);
        let kept = [3, 4, 20, 44];
        let cuts = [10, 17, 32, 45];
        let cover = cover(&all, &kept, &cuts);
        assert!(cover.iter().all(|s| !cuts.iter().any(|c| s.start < *c && *c < s.start + (1 << s.height))));
        let mut f = Frontier::default();
        let (mut subtrees, mut roots) = (cover.iter().peekable(), Vec::new());
        while f.size() < 45 {
            if kept.contains(&f.size()) {
                f.push(all[f.size() as usize]);
            } else {
                let s = subtrees.next().unwrap();
                assert_eq!(s.start, f.size());
                assert!(f.push_subtree(s.height, s.hash));
            }
            if cuts.contains(&f.size()) {
                roots.push(f.root().unwrap());
            }
        }
        let expected: Vec<Digest> = cuts.iter().map(|c| mth(&all[..*c as usize])).collect();
        assert_eq!(roots, expected);
        assert!(cover.len() < 45 - kept.len(), "runs collapse into subtrees: {}", cover.len());
    }

    #[test]
    fn a_subtree_that_is_not_aligned_is_refused() {
        let mut f = Frontier::default();
        f.push([0; 32]);
        assert!(!f.push_subtree(1, [0; 32]), "two leaves cannot start at leaf 1");
        assert!(f.push_subtree(0, [0; 32]));
        assert!(f.push_subtree(1, [0; 32]));
        assert_eq!(f.size(), 4);
    }
}
