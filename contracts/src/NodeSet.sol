// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Signatures} from "./Signatures.sol";

/// @title NodeSet
/// @notice The current set of Sigil nodes, the signing threshold, and the network's root public
///         keys and attestation address as the nodes vouched for them. Every change of the node
///         list starts a new epoch; the root keys of an epoch are recorded only with the signatures
///         of `threshold` distinct nodes of that epoch. The root keys and the attester are
///         written once: a later epoch's record must repeat them (its nodes hold new shares of the
///         same keys), so an admin who lists nodes it controls still cannot change them. Choosing
///         the node list remains the admin's trust.
contract NodeSet {
    /// @notice One node: its id, its X25519 identity public key, the Ethereum address of its
    ///         secp256k1 signing key and the URL it serves on.
    struct Node {
        uint32 id;
        bytes32 identityKey;
        address signer;
        string url;
    }

    /// @notice The network's root public keys for an epoch, as `recordKeys` stored them.
    /// @param ecdsaKey ECDSA root public key, SEC1 compressed (33 bytes)
    /// @param blsKey BLS root public key, G1 compressed (48 bytes)
    /// @param blsShares digest of every node's BLS public share
    /// @param attester the mint attester's address (derived from the ECDSA root key)
    struct RootKeys {
        bytes ecdsaKey;
        bytes blsKey;
        bytes32 blsShares;
        address attester;
    }

    /// @notice Domain tag at the start of every root-key digest.
    bytes internal constant ROOT_KEYS_TAG = "sigil-root-keys-v1";
    /// @notice Most nodes a list may hold: `recordKeys` marks the nodes it counted in one 256-bit
    ///         word, one bit per position in the list.
    uint256 internal constant MAX_NODES = 256;

    /// @notice The account allowed to change the node set.
    address public admin;
    /// @notice The account `transferAdmin` named, which becomes admin when it calls `acceptAdmin`;
    ///         zero when no transfer is pending.
    address public pendingAdmin;
    /// @notice Starts at 0; each `setNodes` increments it.
    uint64 public epoch;
    /// @notice Number of nodes needed to use a key.
    uint32 public threshold;
    /// @notice Address whose signatures attest newly minted PKPs (checked with ecrecover): the
    ///         attester of the latest `recordKeys`, address(0) before any.
    address public attester;
    /// @notice Epoch of the latest `recordKeys` (0 when none was made).
    uint64 public keysEpoch;

    /// @notice The PKP contracts of this network, so that a node configured with NodeSet's
    ///         address alone finds everything it reads.
    address public pkpNft;
    address public pkpPermissions;
    address public pkpHelper;

    Node[] private _nodes;
    /// @dev Per epoch, each node's position in that epoch's list plus one (0: not a node).
    mapping(uint64 epoch => mapping(address signer => uint256)) private _signerSlot;
    /// @dev Per epoch, the node ids its list uses.
    mapping(uint64 epoch => mapping(uint32 id => bool)) private _idTaken;
    mapping(uint64 epoch => RootKeys) private _rootKeys;

    /// @notice A new node list and threshold took effect as epoch `epoch`.
    event NodesSet(uint64 epoch, uint32 threshold, uint256 nodeCount);
    /// @notice The root keys of `epoch` were recorded, naming `attester` the mint attester.
    event KeysRecorded(uint64 epoch, address attester);
    /// @notice `admin` named `pendingAdmin` to take over the admin role.
    event AdminTransferStarted(address admin, address pendingAdmin);
    /// @notice The admin role moved from `previousAdmin` to `newAdmin`.
    event AdminTransferred(address previousAdmin, address newAdmin);
    /// @notice The network's PKP contracts were recorded.
    event ContractsSet(address pkpNft, address pkpPermissions, address pkpHelper);

    /// @notice `caller` is not the admin.
    error NotAdmin(address caller);
    /// @notice `threshold` is not allowed for a list of `nodes` nodes.
    error BadThreshold(uint32 threshold, uint256 nodes);
    /// @notice `caller` is not the pending admin.
    error NotPendingAdmin(address caller);
    /// @notice The node at `index` has a zero signer, or the signer or id of an earlier node.
    error BadNode(uint256 index);
    /// @notice A list of `nodes` nodes is longer than `MAX_NODES`.
    error TooManyNodes(uint256 nodes);
    /// @notice No node list was set yet, so nobody can vouch for keys.
    error NoNodes();
    /// @notice The root keys of `epoch` were recorded already.
    error KeysAlreadyRecorded(uint64 epoch);
    /// @notice A later record names other root keys or another attester than the first one.
    error KeysChanged();
    /// @notice A root key has the wrong length or form, or the attester is zero.
    error BadKeys();
    /// @notice Signature `index` is malformed, high-s, not by a current node, or by a node
    ///         already counted.
    error BadKeySignature(uint256 index);
    /// @notice Only `valid` signatures were given where `threshold` are needed.
    error NotEnoughSignatures(uint256 valid, uint32 threshold);

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    constructor(address admin_) {
        admin = admin_;
    }

    /// @notice Replaces the node list and threshold and starts a new epoch. Earlier epochs' root
    ///         keys stay readable and `attester` is kept; the new epoch needs its own `recordKeys`.
    /// @dev With n = nodes_.length, `threshold_` must satisfy max(2, ceil(2n/3)) <= threshold_ <= n
    ///      (ceil(2n/3) = (2n + 2) / 3, the nodes' `sigil_tss::threshold_for(n)`), so a list of
    ///      fewer than 2 nodes is always refused. Anything else reverts with `BadThreshold`. A list
    ///      longer than `MAX_NODES` reverts with `TooManyNodes`; a node whose signer is zero, or
    ///      whose signer or id an earlier node has, with `BadNode(index)`.
    function setNodes(Node[] calldata nodes_, uint32 threshold_) external onlyAdmin {
        uint256 n = nodes_.length;
        if (n > MAX_NODES) revert TooManyNodes(n);
        if (threshold_ < 2 || threshold_ > n || threshold_ < (2 * n + 2) / 3) revert BadThreshold(threshold_, n);
        uint64 next = epoch + 1;
        _storeNodes(nodes_, next);
        threshold = threshold_;
        epoch = next;
        emit NodesSet(next, threshold_, n);
    }

    /// @notice Digest the nodes sign to vouch for the root keys of `epoch_`:
    ///         keccak256("sigil-root-keys-v1" ‖ chainid (32 bytes) ‖ this contract (20 bytes) ‖
    ///         epoch (32 bytes) ‖ keccak256(ecdsaKey) ‖ keccak256(blsKey) ‖ blsShares (32 bytes) ‖
    ///         attester (20 bytes)).
    function rootKeysDigest(
        uint64 epoch_,
        bytes calldata ecdsaKey,
        bytes calldata blsKey,
        bytes32 blsShares,
        address attester_
    ) public view returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                ROOT_KEYS_TAG,
                block.chainid,
                address(this),
                uint256(epoch_),
                keccak256(ecdsaKey),
                keccak256(blsKey),
                blsShares,
                attester_
            )
        );
    }

    /// @notice Records the network's root keys for the current epoch and names `attester_` the
    ///         mint attester. Anyone may call: the nodes' signatures authorize it. After the first
    ///         record only `blsShares` may differ (reverts `KeysChanged` otherwise).
    /// @param ecdsaKey ECDSA root public key, SEC1 compressed (33 bytes, 0x02 or 0x03 first)
    /// @param blsKey BLS root public key, G1 compressed (48 bytes)
    /// @param blsShares digest of every node's BLS public share
    /// @param attester_ the mint attester's address, not zero
    /// @param signatures at least `threshold` signatures over `rootKeysDigest(epoch, …)`, each
    ///        r ‖ s ‖ v (65 bytes; v 27/28 or 0/1; low s) by the signer of a distinct current node
    function recordKeys(
        bytes calldata ecdsaKey,
        bytes calldata blsKey,
        bytes32 blsShares,
        address attester_,
        bytes[] calldata signatures
    ) external {
        uint64 current = epoch;
        if (current == 0) revert NoNodes();
        if (keysEpoch == current) revert KeysAlreadyRecorded(current);
        if (!_wellFormed(ecdsaKey, blsKey, attester_)) revert BadKeys();
        if (keysEpoch != 0) {
            RootKeys storage first = _rootKeys[keysEpoch];
            if (
                keccak256(ecdsaKey) != keccak256(first.ecdsaKey) || keccak256(blsKey) != keccak256(first.blsKey)
                    || attester_ != first.attester
            ) revert KeysChanged();
        }
        uint256 valid = _countSigners(rootKeysDigest(current, ecdsaKey, blsKey, blsShares, attester_), signatures);
        if (valid < threshold) revert NotEnoughSignatures(valid, threshold);
        _rootKeys[current] = RootKeys({ecdsaKey: ecdsaKey, blsKey: blsKey, blsShares: blsShares, attester: attester_});
        attester = attester_;
        keysEpoch = current;
        emit KeysRecorded(current, attester_);
    }

    /// @notice The latest root-key record (all fields empty when none was made).
    function rootKeys() external view returns (RootKeys memory) {
        return _rootKeys[keysEpoch];
    }

    /// @notice The root-key record of `epoch_` (all fields empty when none was made for it).
    function rootKeysOf(uint64 epoch_) external view returns (RootKeys memory) {
        return _rootKeys[epoch_];
    }

    /// @notice Records the network's PKP contracts.
    function setContracts(address pkpNft_, address pkpPermissions_, address pkpHelper_) external onlyAdmin {
        pkpNft = pkpNft_;
        pkpPermissions = pkpPermissions_;
        pkpHelper = pkpHelper_;
        emit ContractsSet(pkpNft_, pkpPermissions_, pkpHelper_);
    }

    /// @notice Starts handing the admin role to `newAdmin`, who must call `acceptAdmin` to take it;
    ///         until then the current admin keeps the role. A later call replaces the pending
    ///         admin; `transferAdmin(address(0))` cancels a pending transfer.
    function transferAdmin(address newAdmin) external onlyAdmin {
        pendingAdmin = newAdmin;
        emit AdminTransferStarted(admin, newAdmin);
    }

    /// @notice Completes a transfer started by `transferAdmin`: the pending admin becomes admin.
    function acceptAdmin() external {
        if (msg.sender != pendingAdmin) revert NotPendingAdmin(msg.sender);
        address old = admin;
        admin = msg.sender;
        pendingAdmin = address(0);
        emit AdminTransferred(old, msg.sender);
    }

    /// @notice The current node list, in the order it was set.
    function getNodes() external view returns (Node[] memory) {
        return _nodes;
    }

    /// @notice Number of nodes in the current list.
    function nodeCount() external view returns (uint256) {
        return _nodes.length;
    }

    /// @dev Replaces the stored list with `nodes_` and indexes its signers and ids under `epoch_`.
    function _storeNodes(Node[] calldata nodes_, uint64 epoch_) private {
        mapping(address => uint256) storage slotOf = _signerSlot[epoch_];
        mapping(uint32 => bool) storage idTaken = _idTaken[epoch_];
        delete _nodes;
        for (uint256 i = 0; i < nodes_.length; i++) {
            Node calldata node = nodes_[i];
            if (node.signer == address(0) || slotOf[node.signer] != 0 || idTaken[node.id]) revert BadNode(i);
            slotOf[node.signer] = i + 1;
            idTaken[node.id] = true;
            _nodes.push(node);
        }
    }

    /// @dev Whether the keys have the form `recordKeys` requires and the attester is not zero.
    function _wellFormed(bytes calldata ecdsaKey, bytes calldata blsKey, address attester_)
        private
        pure
        returns (bool)
    {
        return ecdsaKey.length == 33 && (ecdsaKey[0] == 0x02 || ecdsaKey[0] == 0x03) && blsKey.length == 48
            && attester_ != address(0);
    }

    /// @dev Number of `signatures` over `digest`; reverts with `BadKeySignature(index)` at the
    ///      first one that is not by a current node or is by a node counted before.
    function _countSigners(bytes32 digest, bytes[] calldata signatures) private view returns (uint256) {
        mapping(address => uint256) storage slotOf = _signerSlot[epoch];
        uint256 counted; // bit i: the node at position i signed
        for (uint256 i = 0; i < signatures.length; i++) {
            uint256 slot = slotOf[Signatures.recover(digest, signatures[i])];
            if (slot == 0) revert BadKeySignature(i);
            uint256 bit = uint256(1) << (slot - 1);
            if (counted & bit != 0) revert BadKeySignature(i);
            counted |= bit;
        }
        return signatures.length;
    }
}
