//! The Merkle tree over an entry's leaf hashes (RFC 9162, section 2.1):
//! an entry's hash covers the root, and one record's inclusion is shown by
//! the `log2(n)` hashes on its way to the root — so an evidence bundle
//! carries a few hashes per record instead of every other record's leaf.
//!
//! A leaf hash (hex) enters the tree as `H(0x00 ‖ leaf)`, two nodes join as
//! `H(0x01 ‖ left ‖ right)`, and a tree of `n > 1` leaves splits at the
//! largest power of two below `n`; `H` is the entry's algorithm. The
//! prefixes keep a leaf from passing for an inner node. A hash given in hex
//! enters as its bytes; anything else as its text, so a damaged value
//! still gives a (wrong) root instead of an error.

use crate::chain::HashAlg;
use sha2::{Digest, Sha256};

fn bytes(hex_or_text: &str) -> Vec<u8> {
    hex::decode(hex_or_text).unwrap_or_else(|_| hex_or_text.as_bytes().to_vec())
}

fn hash(alg: HashAlg, parts: &[&[u8]]) -> Vec<u8> {
    fn over<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut h = D::new();
        parts.iter().for_each(|p| h.update(p));
        h.finalize().to_vec()
    }
    match alg {
        HashAlg::Sha256 => over::<Sha256>(parts),
        HashAlg::Sm3 => over::<sm3::Sm3>(parts),
    }
}

fn leaf_node(alg: HashAlg, leaf: &str) -> Vec<u8> {
    hash(alg, &[&[0x00], &bytes(leaf)])
}

fn join(alg: HashAlg, left: &[u8], right: &[u8]) -> Vec<u8> {
    hash(alg, &[&[0x01], left, right])
}

/// The largest power of two smaller than `n` (`n > 1`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

fn tree(alg: HashAlg, nodes: &[Vec<u8>]) -> Vec<u8> {
    match nodes {
        // The empty tree: the hash of nothing (no entry has one).
        [] => hash(alg, &[]),
        [one] => one.clone(),
        _ => {
            let k = split(nodes.len());
            join(alg, &tree(alg, &nodes[..k]), &tree(alg, &nodes[k..]))
        }
    }
}

/// The root (hex) over `leaves`, in order.
pub fn root<S: AsRef<str>>(alg: HashAlg, leaves: &[S]) -> String {
    let nodes: Vec<Vec<u8>> = leaves.iter().map(|l| leaf_node(alg, l.as_ref())).collect();
    hex::encode(tree(alg, &nodes))
}

/// The inclusion path (hex, leaf side first) of leaf `index` among
/// `leaves`; empty for an index out of range.
pub fn path<S: AsRef<str>>(alg: HashAlg, leaves: &[S], index: usize) -> Vec<String> {
    let nodes: Vec<Vec<u8>> = leaves.iter().map(|l| leaf_node(alg, l.as_ref())).collect();
    if index >= nodes.len() {
        return Vec::new();
    }
    let mut out = Vec::new();
    walk(alg, &nodes, index, &mut out);
    out.into_iter().map(hex::encode).collect()
}

fn walk(alg: HashAlg, nodes: &[Vec<u8>], m: usize, out: &mut Vec<Vec<u8>>) {
    if nodes.len() <= 1 {
        return;
    }
    let k = split(nodes.len());
    if m < k {
        walk(alg, &nodes[..k], m, out);
        out.push(tree(alg, &nodes[k..]));
    } else {
        walk(alg, &nodes[k..], m - k, out);
        out.push(tree(alg, &nodes[..k]));
    }
}

/// The root that leaf `leaf` at `index` of `count` leaves leads to by
/// `path` (RFC 9162, 2.1.3.2); `None` when the path cannot belong to such
/// a tree (too long or too short, or the index out of range).
pub fn root_from_path(alg: HashAlg, leaf: &str, index: u64, count: u64, path: &[String]) -> Option<String> {
    if index >= count {
        return None;
    }
    let (mut f, mut s) = (index, count - 1);
    let mut r = leaf_node(alg, leaf);
    for p in path {
        if s == 0 {
            return None;
        }
        let p = bytes(p);
        if f & 1 == 1 || f == s {
            r = join(alg, &p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = join(alg, &r, &p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then(|| hex::encode(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<String> {
        (0..n).map(|i| hex::encode(Sha256::digest(format!("record {i}")))).collect()
    }

    #[test]
    fn every_leaf_of_every_size_is_proved_and_nothing_else_is() {
        for alg in [HashAlg::Sha256, HashAlg::Sm3] {
            for n in 1..=40 {
                let l = leaves(n);
                let r = root(alg, &l);
                for i in 0..n {
                    let p = path(alg, &l, i);
                    assert!(p.len() <= 6, "log2 of {n}: {}", p.len());
                    assert_eq!(root_from_path(alg, &l[i], i as u64, n as u64, &p).as_deref(), Some(r.as_str()));
                    // Another leaf, another place, a changed or missing hash
                    // on the way: a different root or none. (Another size
                    // may lead to the same root: the entry's hash covers
                    // its count.)
                    let other = if n > 1 { &l[(i + 1) % n] } else { &l[0] };
                    if n > 1 {
                        assert_ne!(root_from_path(alg, other, i as u64, n as u64, &p).as_deref(), Some(r.as_str()));
                        let j = (i + 1) % n;
                        assert_ne!(root_from_path(alg, &l[i], j as u64, n as u64, &p).as_deref(), Some(r.as_str()));
                    }
                    for k in 0..p.len() {
                        let mut q = p.clone();
                        q[k] = l[0].clone();
                        assert_ne!(root_from_path(alg, &l[i], i as u64, n as u64, &q).as_deref(), Some(r.as_str()));
                        let mut short = p.clone();
                        short.remove(k);
                        assert_ne!(root_from_path(alg, &l[i], i as u64, n as u64, &short).as_deref(), Some(r.as_str()));
                    }
                    assert_eq!(root_from_path(alg, &l[i], n as u64, n as u64, &p), None);
                }
            }
        }
    }

    #[test]
    fn the_tree_is_rfc_9162s() {
        // Three leaves: MTH = H(1 ‖ H(1 ‖ H(0‖a) ‖ H(0‖b)) ‖ H(0‖c)).
        let l = leaves(3);
        let h = |p: u8, parts: &[&[u8]]| {
            let mut d = Sha256::new();
            d.update([p]);
            parts.iter().for_each(|x| d.update(x));
            d.finalize().to_vec()
        };
        let [a, b, c] = [0, 1, 2].map(|i| h(0, &[&hex::decode(&l[i]).unwrap()]));
        let expected = h(1, &[&h(1, &[&a, &b]), &c]);
        assert_eq!(root(HashAlg::Sha256, &l), hex::encode(expected));
        assert_eq!(path(HashAlg::Sha256, &l, 2), vec![hex::encode(h(1, &[&a, &b]))]);
        assert_eq!(path(HashAlg::Sha256, &l, 0), vec![hex::encode(&b), hex::encode(&c)]);
    }
}
