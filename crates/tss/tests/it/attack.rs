//! Why a presignature is held by exactly `t` parties (DESIGN §4, "Why exactly t"; issue 15 item 2).
//!
//! The adversary is the allocator of a presignature slot plus `t − 2` colluding holders: `c = t − 1`
//! corrupt holders, one short of a signing quorum, who know their own shares `k_i` and `σ_i` of the
//! inverse nonce `k` and of `σ = k·x`. It wants the root secret `x`, and with it every PKP key
//! `x + h(keyId)`. An honest holder's signature share `s_i = m·k_i + r·σ_i` is one linear equation
//! in the `2t` unknown coefficients of the degree-`t − 1` polynomials `k(·)` and `σ(·)`, with
//! coefficients the adversary computes from public values; the colluders add `2(t − 1)` more.
//! If the presignature had `t + 1` holders (two honest), the allocator binds it to message `m₁` at
//! one and `m₂` at the other; each releases only once, as the store guarantees, yet the two shares
//! complete a `2t × 2t` system of full rank, and solving it yields `k`, `σ` and `x = σ·k⁻¹`
//! ([`check_two_messages_leak`]). With exactly `t` holders the one honest holder releases at most
//! once, the adversary has `2t − 1` equations of rank `2t − 1`, and every root secret (but the one
//! that would make the signature `s = 0`) is consistent with its view ([`check_one_release_hides`]);
//! a hypothetical second release by that holder would again give rank `2t` and the key
//! ([`check_second_release_would_leak`]), so it is exactly the take-once rule on exactly `t`
//! holders that saves it.
//!
//! Party `PartyId(i)` evaluates at `x = i + 1` ([`PartyId::x`]), as everywhere in Sigil; holders
//! here are `PartyId(0..holders)`, i.e. `x = 1..=holders`, the corrupt ones first.

use ff::Field;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sigil_tss::derive::{derivation_tweak, derive_public_key, KeyId};
use sigil_tss::k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sigil_tss::k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sigil_tss::k256::elliptic_curve::ops::Reduce;
use sigil_tss::k256::elliptic_curve::point::AffineCoordinates;
use sigil_tss::k256::{ProjectivePoint, Scalar, U256};
use sigil_tss::PartyId;

const G: ProjectivePoint = ProjectivePoint::GENERATOR;

// ---------------------------------------------------------------------------------------------
// The model: a presignature of threshold t as a dealer would see it, and the online phase.
// ---------------------------------------------------------------------------------------------

/// Root secret `x`, the polynomials `k(·)` (`k(0) = k`, the inverse nonce) and `σ(·)` (`σ(0) = k·x`),
/// both of degree `t − 1` with independent random higher coefficients, and the public `R = k⁻¹·G`.
struct Presig {
    x: Scalar,
    k: Vec<Scalar>,
    sigma: Vec<Scalar>,
    big_r: ProjectivePoint,
}

impl Presig {
    fn new(t: usize, rng: &mut ChaCha20Rng) -> Self {
        let x = Scalar::random(&mut *rng);
        let k0 = Scalar::random(&mut *rng);
        let mut k = vec![k0];
        let mut sigma = vec![k0 * x];
        for _ in 1..t {
            k.push(Scalar::random(&mut *rng));
            sigma.push(Scalar::random(&mut *rng));
        }
        let big_r = G * k0.invert().unwrap();
        Presig { x, k, sigma, big_r }
    }

    fn t(&self) -> usize {
        self.k.len()
    }

    fn public_key(&self) -> ProjectivePoint {
        G * self.x
    }

    /// The true unknowns, in the adversary's order `(k_0..k_{t−1}, σ_0..σ_{t−1})`.
    fn unknowns(&self) -> Vec<Scalar> {
        [self.k.clone(), self.sigma.clone()].concat()
    }

    /// A holder's shares `(k(i), σ(i))`.
    fn shares(&self, holder: PartyId) -> (Scalar, Scalar) {
        (eval(&self.k, holder), eval(&self.sigma, holder))
    }
}

/// `(1, x, x², …, x^{t−1})` at the holder's x-coordinate.
fn powers(holder: PartyId, t: usize) -> Vec<Scalar> {
    let x = Scalar::from(holder.x());
    std::iter::successors(Some(Scalar::ONE), |p| Some(*p * x))
        .take(t)
        .collect()
}

fn eval(coeffs: &[Scalar], holder: PartyId) -> Scalar {
    let x = Scalar::from(holder.x());
    coeffs.iter().rev().fold(Scalar::ZERO, |acc, c| acc * x + c)
}

fn x_coordinate(point: ProjectivePoint) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(&point.to_affine().x())
}

#[derive(Clone, Copy)]
enum Mode {
    /// `s_i = m·k_i + r·σ_i`, as in the DESIGN paragraph.
    Plain,
    /// Sigil's online phase (module docs of `sigil_tss::ecdsa`): re-randomised by `δ` and tweaked by `ε`.
    Rerandomised,
}

/// One signing request as the holders see it: the message scalar `m`, the re-randomiser `δ` and the
/// additive key tweak `ε` (`δ = 1`, `ε = 0` in [`Mode::Plain`]).
#[derive(Clone, Copy)]
struct Request {
    m: Scalar,
    delta: Scalar,
    eps: Scalar,
}

impl Request {
    fn new(rng: &mut ChaCha20Rng, mode: Mode) -> Self {
        let m = Scalar::random(&mut *rng);
        match mode {
            Mode::Plain => Request {
                m,
                delta: Scalar::ONE,
                eps: Scalar::ZERO,
            },
            Mode::Rerandomised => Self::rerandomised(rng, m, derivation_tweak(&KeyId([0x15; 32]))),
        }
    }

    /// `δ = H(P, m, R, S, ε, ρ)` is a public hash, so the adversary knows it as well as the holders;
    /// a fresh random scalar stands in for it (a fresh `ρ` gives a fresh `δ`).
    fn rerandomised(rng: &mut ChaCha20Rng, m: Scalar, eps: Scalar) -> Self {
        Request {
            m,
            delta: Scalar::random(&mut *rng),
            eps,
        }
    }

    /// `r' = x(δ·R)`, public once the request is bound.
    fn r(&self, big_r: ProjectivePoint) -> Scalar {
        x_coordinate(big_r * self.delta)
    }

    /// The public coefficients `(α, β)` with `s_i = α·k_i + β·σ_i`.
    ///
    /// Re-randomisation and the additive tweak are public, invertible, linear transforms of the
    /// holder's `(k_i, σ_i)`: `k'_i = δ⁻¹·k_i`, `σ'_i = δ⁻¹·(σ_i + ε·k_i)`, so
    /// `s_i = m·k'_i + r'·σ'_i = δ⁻¹(m + r'·ε)·k_i + δ⁻¹r'·σ_i`. Each released share is still one
    /// linear equation in the same `2t` unknowns, with coefficients anyone can compute from
    /// `m, δ, ε, R`; the rank argument is unchanged.
    fn coefficients(&self, big_r: ProjectivePoint) -> (Scalar, Scalar) {
        let r = self.r(big_r);
        let d = self.delta.invert().unwrap();
        (d * (self.m + r * self.eps), d * r)
    }
}

/// What an honest holder computes and releases (once) for `req`, exactly as the online phase does.
fn sign_share(p: &Presig, holder: PartyId, req: &Request) -> Scalar {
    let (k_i, sigma_i) = p.shares(holder);
    let d = req.delta.invert().unwrap();
    let k2 = d * k_i;
    let sigma2 = d * (sigma_i + req.eps * k_i);
    req.m * k2 + req.r(p.big_r) * sigma2
}

fn lagrange_at_zero(me: PartyId, set: &[PartyId]) -> Scalar {
    let xi = Scalar::from(me.x());
    let (num, den) = set
        .iter()
        .filter(|p| **p != me)
        .fold((Scalar::ONE, Scalar::ONE), |(n, d), p| {
            let xj = Scalar::from(p.x());
            (n * xj, d * (xj - xi))
        });
    num * den.invert().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Linear algebra over the secp256k1 scalar field.
// ---------------------------------------------------------------------------------------------

fn width(matrix: &[Vec<Scalar>]) -> usize {
    matrix.first().map_or(0, Vec::len)
}

/// Brings `rows` to reduced row echelon form over their first `cols` columns (any further column,
/// such as a right-hand side, is carried along) and returns the pivot column of each nonzero row.
fn reduce(rows: &mut [Vec<Scalar>], cols: usize) -> Vec<usize> {
    let mut pivots = Vec::new();
    for col in 0..cols {
        let row = pivots.len();
        let Some(found) = (row..rows.len()).find(|&i| rows[i][col] != Scalar::ZERO) else {
            continue;
        };
        rows.swap(row, found);
        let inv = rows[row][col].invert().unwrap();
        rows[row].iter_mut().for_each(|v| *v *= inv);
        let pivot = rows[row].clone();
        for (i, other) in rows.iter_mut().enumerate() {
            let f = other[col];
            if i != row && f != Scalar::ZERO {
                other.iter_mut().zip(&pivot).for_each(|(v, p)| *v -= f * p);
            }
        }
        pivots.push(col);
    }
    pivots
}

fn rank(matrix: &[Vec<Scalar>]) -> usize {
    reduce(&mut matrix.to_vec(), width(matrix)).len()
}

/// The unique solution of `matrix · u = rhs`, or `None` if there is none or more than one.
fn solve(matrix: &[Vec<Scalar>], rhs: &[Scalar]) -> Option<Vec<Scalar>> {
    let cols = width(matrix);
    let mut aug: Vec<Vec<Scalar>> = matrix
        .iter()
        .zip(rhs)
        .map(|(row, b)| [row.as_slice(), &[*b]].concat())
        .collect();
    let pivots = reduce(&mut aug, cols);
    let inconsistent = aug[pivots.len()..].iter().any(|row| row[cols] != Scalar::ZERO);
    if inconsistent || pivots.len() < cols {
        return None;
    }
    Some(aug[..cols].iter().map(|row| row[cols]).collect())
}

/// A basis of `{u : matrix · u = 0}`.
fn nullspace(matrix: &[Vec<Scalar>]) -> Vec<Vec<Scalar>> {
    let cols = width(matrix);
    let mut rows = matrix.to_vec();
    let pivots = reduce(&mut rows, cols);
    (0..cols)
        .filter(|c| !pivots.contains(c))
        .map(|free| {
            let mut v = vec![Scalar::ZERO; cols];
            v[free] = Scalar::ONE;
            for (row, &p) in pivots.iter().enumerate() {
                v[p] = -rows[row][free];
            }
            v
        })
        .collect()
}

fn satisfies(matrix: &[Vec<Scalar>], rhs: &[Scalar], u: &[Scalar]) -> bool {
    matrix.len() == rhs.len()
        && matrix
            .iter()
            .zip(rhs)
            .all(|(row, b)| row.iter().zip(u).fold(Scalar::ZERO, |acc, (a, x)| acc + *a * x) == *b)
}

/// `x = σ(0)·k(0)⁻¹` from a candidate `(k_0.., σ_0..)`.
fn secret_of(u: &[Scalar], t: usize) -> Option<Scalar> {
    Option::from(u[0].invert()).map(|inv: Scalar| u[t] * inv)
}

// ---------------------------------------------------------------------------------------------
// The adversary.
// ---------------------------------------------------------------------------------------------

/// The adversary's knowledge as linear equations in `(k_0..k_{t−1}, σ_0..σ_{t−1})`.
struct View {
    t: usize,
    matrix: Vec<Vec<Scalar>>,
    rhs: Vec<Scalar>,
}

impl View {
    /// `α·k(i) + β·σ(i) = value`.
    fn equation(&mut self, holder: PartyId, alpha: Scalar, beta: Scalar, value: Scalar) {
        let v = powers(holder, self.t);
        let row = v.iter().map(|p| alpha * p).chain(v.iter().map(|p| beta * p)).collect();
        self.matrix.push(row);
        self.rhs.push(value);
    }

    /// A corrupt holder knows both of its shares: two equations.
    fn corrupt(&mut self, p: &Presig, holder: PartyId) {
        let (k_i, sigma_i) = p.shares(holder);
        self.equation(holder, Scalar::ONE, Scalar::ZERO, k_i);
        self.equation(holder, Scalar::ZERO, Scalar::ONE, sigma_i);
    }

    /// A share released by an honest holder: one equation, its coefficients from public values only.
    fn released(&mut self, big_r: ProjectivePoint, holder: PartyId, req: &Request, share: Scalar) {
        let (alpha, beta) = req.coefficients(big_r);
        self.equation(holder, alpha, beta, share);
    }
}

/// Runs the attack on `p` held by `holders` parties: the first `t − 1` holders are the allocator and
/// its `t − 2` colluders, the rest are honest. `releases` lists which honest holder (by index among
/// the honest ones) releases a share for which request; the adversary records every release.
fn attack(p: &Presig, holders: usize, releases: &[(usize, &Request)]) -> View {
    let t = p.t();
    let all: Vec<PartyId> = (0..holders as u32).map(PartyId).collect();
    let (corrupt, honest) = all.split_at(t - 1);
    let mut view = View {
        t,
        matrix: Vec::new(),
        rhs: Vec::new(),
    };
    for c in corrupt {
        view.corrupt(p, *c);
    }
    for (h, req) in releases {
        let holder = honest[*h];
        view.released(p.big_r, holder, req, sign_share(p, holder, req));
    }
    view
}

/// The system has full rank `2t`: the adversary solves it for both polynomials, hence `x`, hence
/// every PKP key, and signs for a PKP without the network.
fn assert_recovers(p: &Presig, view: &View) {
    let t = p.t();
    assert_eq!(
        rank(&view.matrix),
        2 * t,
        "t = {t}: the adversary's system should have full rank"
    );
    let u = solve(&view.matrix, &view.rhs).expect("2t independent equations have one solution");
    assert_eq!(u, p.unknowns(), "t = {t}: recovers k(·) and σ(·)");
    let x = secret_of(&u, t).expect("k ≠ 0");
    assert_eq!(x, p.x, "t = {t}: recovers the root secret");

    let key_id = KeyId([t as u8; 32]);
    let pkp = derive_public_key(&p.public_key(), &key_id);
    let pkp_secret = x + derivation_tweak(&key_id);
    assert_eq!(G * pkp_secret, pkp, "x + h(keyId) is the PKP's private key");
    let hash = [0x42; 32];
    let forged: Signature = SigningKey::from_bytes(&pkp_secret.to_bytes())
        .unwrap()
        .sign_prehash(&hash)
        .unwrap();
    let verifier = VerifyingKey::from_affine(pkp.to_affine()).unwrap();
    assert!(
        verifier.verify_prehash(&hash, &forged).is_ok(),
        "a forged signature verifies under the PKP"
    );
}

/// The system has rank `2t − 1`: no unique solution, and for random guesses `x*` a solution with
/// secret `x*` satisfies every equation the adversary has, i.e. its view does not determine `x`.
fn assert_hidden(p: &Presig, view: &View, rng: &mut ChaCha20Rng) {
    let t = p.t();
    assert_eq!(rank(&view.matrix), 2 * t - 1, "t = {t}: rank t + c = 2t − 1");
    assert!(
        solve(&view.matrix, &view.rhs).is_none(),
        "t = {t}: the system is underdetermined"
    );
    let truth = p.unknowns();
    assert!(satisfies(&view.matrix, &view.rhs, &truth));

    let null = nullspace(&view.matrix);
    assert_eq!(null.len(), 1, "t = {t}: a one-dimensional space of solutions");
    let n = &null[0];
    assert!(satisfies(&view.matrix, &vec![Scalar::ZERO; view.rhs.len()], n));
    // truth + λ·n has secret (σ + λ·n_σ0)/(k + λ·n_k0); solve for λ to hit the guess. Only one value
    // is out of reach (the limit λ → ∞), the one for which the signature would be s = 0.
    for _ in 0..4 {
        let guess = Scalar::random(&mut *rng);
        assert_ne!(guess, p.x);
        let lambda = (guess * p.k[0] - p.sigma[0]) * (n[t] - guess * n[0]).invert().unwrap();
        let other: Vec<Scalar> = truth.iter().zip(n).map(|(u, d)| *u + lambda * d).collect();
        assert!(
            satisfies(&view.matrix, &view.rhs, &other),
            "t = {t}: another solution fits the view"
        );
        assert_eq!(secret_of(&other, t), Some(guess), "t = {t}: … with another root secret");
    }
}

fn rng(t: usize, scenario: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(0x5167_A77A_0000_0000 | (scenario << 8) | t as u64)
}

const MODES: [Mode; 2] = [Mode::Plain, Mode::Rerandomised];

// ---------------------------------------------------------------------------------------------
// Scenarios.
// ---------------------------------------------------------------------------------------------

/// The model is threshold ECDSA: any `t` holders' shares for one request interpolate to `s` with
/// `s⁻¹·(m·G + r'·P) = R'`, where `P = X + ε·G` and `R' = δ·R`.
fn check_model_signs(t: usize) {
    for mode in MODES {
        let mut rng = rng(t, 0);
        let p = Presig::new(t, &mut rng);
        let req = Request::new(&mut rng, mode);
        let signers: Vec<PartyId> = (1..=t as u32).map(PartyId).collect();
        let s = signers.iter().fold(Scalar::ZERO, |acc, i| {
            acc + lagrange_at_zero(*i, &signers) * sign_share(&p, *i, &req)
        });
        let r = req.r(p.big_r);
        let pkp = p.public_key() + G * req.eps;
        let nonce_point = (G * req.m + pkp * r) * s.invert().unwrap();
        assert_eq!(
            nonce_point,
            p.big_r * req.delta,
            "t = {t}: (r', s) is an ECDSA signature under P"
        );
        assert_eq!(x_coordinate(nonce_point), r);
    }
}

/// Case A: `t + 1` holders. The allocator binds the presignature to `m₁` at one honest holder and to
/// `m₂` at the other; each releases once. `2(t − 1) + 2 = 2t` equations of full rank: the key leaks.
fn check_two_messages_leak(t: usize) {
    for mode in MODES {
        let mut rng = rng(t, 1);
        let p = Presig::new(t, &mut rng);
        let (m1, m2) = (Request::new(&mut rng, mode), Request::new(&mut rng, mode));
        let view = attack(&p, t + 1, &[(0, &m1), (1, &m2)]);
        assert_eq!(view.matrix.len(), 2 * t);
        assert_recovers(&p, &view);
    }
}

/// Case B: exactly `t` holders. Whatever request the allocator binds, the one honest holder releases
/// once: `2(t − 1) + 1 = 2t − 1` equations, rank `2t − 1 < 2t`, and the root secret stays open.
fn check_one_release_hides(t: usize) {
    for mode in MODES {
        let mut rng = rng(t, 2);
        let p = Presig::new(t, &mut rng);
        let m1 = Request::new(&mut rng, mode);
        let view = attack(&p, t, &[(0, &m1)]);
        assert_eq!(view.matrix.len(), 2 * t - 1);
        assert_hidden(&p, &view, &mut rng);
    }
}

/// Case B with a second share the honest holder never gives (the store refuses a second take): with
/// it the rank would be `2t` and the key would leak. The one-release rule is what saves case B.
fn check_second_release_would_leak(t: usize) {
    for mode in MODES {
        let mut rng = rng(t, 3);
        let p = Presig::new(t, &mut rng);
        let (m1, m2) = (Request::new(&mut rng, mode), Request::new(&mut rng, mode));
        let view = attack(&p, t, &[(0, &m1), (0, &m2)]);
        assert_eq!(view.matrix.len(), 2 * t);
        assert_recovers(&p, &view);
    }
}

/// Spare holders are harmless only if every one of them is bound to the same request: two honest
/// holders releasing for the same `(m, δ, ε)` give proportional equations, and the rank stays `2t − 1`.
fn check_same_request_at_spare_holders_hides(t: usize) {
    for mode in MODES {
        let mut rng = rng(t, 4);
        let p = Presig::new(t, &mut rng);
        let m1 = Request::new(&mut rng, mode);
        let view = attack(&p, t + 1, &[(0, &m1), (1, &m1)]);
        assert_eq!(view.matrix.len(), 2 * t);
        assert_hidden(&p, &view, &mut rng);
    }
}

/// With re-randomisation, binding the same message and key under a fresh `ρ` is a different request:
/// `δ`, hence `r'` and the ratio `α/β = m/r' + ε`, change, and two such releases leak the key. The
/// rule is one release per presignature, not per message.
fn check_same_message_fresh_entropy_leaks(t: usize) {
    let mut rng = rng(t, 5);
    let p = Presig::new(t, &mut rng);
    let first = Request::new(&mut rng, Mode::Rerandomised);
    let again = Request::rerandomised(&mut rng, first.m, first.eps);
    let view = attack(&p, t + 1, &[(0, &first), (1, &again)]);
    assert_recovers(&p, &view);
}

#[test]
fn linear_algebra_helpers_agree() {
    let mut rng = rng(0, 6);
    let matrix: Vec<Vec<Scalar>> = (0..5)
        .map(|_| (0..5).map(|_| Scalar::random(&mut rng)).collect())
        .collect();
    let u: Vec<Scalar> = (0..5).map(|_| Scalar::random(&mut rng)).collect();
    let rhs: Vec<Scalar> = matrix
        .iter()
        .map(|row| row.iter().zip(&u).map(|(a, x)| *a * x).sum())
        .collect();
    assert_eq!(rank(&matrix), 5);
    assert_eq!(solve(&matrix, &rhs), Some(u.clone()));
    assert!(nullspace(&matrix).is_empty());
    // Repeat a row: rank 4, no unique solution, one kernel vector.
    let mut short = matrix.clone();
    short[4] = short[0].clone();
    let rhs_short: Vec<Scalar> = short
        .iter()
        .map(|row| row.iter().zip(&u).map(|(a, x)| *a * x).sum())
        .collect();
    assert_eq!(rank(&short), 4);
    assert_eq!(solve(&short, &rhs_short), None);
    assert_eq!(nullspace(&short).len(), 1);
    // Inconsistent: same row, different right-hand side.
    let mut bad = rhs_short;
    bad[4] += Scalar::ONE;
    assert_eq!(solve(&short, &bad), None);
}

#[test]
fn model_signs_t2() {
    check_model_signs(2);
}

#[test]
fn model_signs_t3() {
    check_model_signs(3);
}

#[test]
fn model_signs_t7() {
    check_model_signs(7);
}

#[test]
fn t_plus_1_holders_leak_the_root_key_t2() {
    check_two_messages_leak(2);
}

#[test]
fn t_plus_1_holders_leak_the_root_key_t3() {
    check_two_messages_leak(3);
}

#[test]
fn t_plus_1_holders_leak_the_root_key_t4() {
    check_two_messages_leak(4);
}

#[test]
fn t_plus_1_holders_leak_the_root_key_t7() {
    check_two_messages_leak(7);
}

#[test]
fn exactly_t_holders_hide_the_root_key_t2() {
    check_one_release_hides(2);
}

#[test]
fn exactly_t_holders_hide_the_root_key_t3() {
    check_one_release_hides(3);
}

#[test]
fn exactly_t_holders_hide_the_root_key_t4() {
    check_one_release_hides(4);
}

#[test]
fn exactly_t_holders_hide_the_root_key_t7() {
    check_one_release_hides(7);
}

#[test]
fn a_second_release_by_the_honest_holder_would_leak_t2() {
    check_second_release_would_leak(2);
}

#[test]
fn a_second_release_by_the_honest_holder_would_leak_t3() {
    check_second_release_would_leak(3);
}

#[test]
fn a_second_release_by_the_honest_holder_would_leak_t4() {
    check_second_release_would_leak(4);
}

#[test]
fn a_second_release_by_the_honest_holder_would_leak_t7() {
    check_second_release_would_leak(7);
}

#[test]
fn spare_holders_bound_to_one_request_hide_the_root_key_t2() {
    check_same_request_at_spare_holders_hides(2);
}

#[test]
fn spare_holders_bound_to_one_request_hide_the_root_key_t7() {
    check_same_request_at_spare_holders_hides(7);
}

#[test]
fn the_same_message_under_fresh_entropy_leaks_t2() {
    check_same_message_fresh_entropy_leaks(2);
}

#[test]
fn the_same_message_under_fresh_entropy_leaks_t7() {
    check_same_message_fresh_entropy_leaks(7);
}
