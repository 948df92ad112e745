// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Signatures} from "./Signatures.sol";

/// @title NodeSet
/// @notice The current set of Sigil nodes, the signing threshold, and the network's root public
///         keys and attestation address as the nodes vouched for them. Every change of the node
///         list starts a new epoch; the root keys of an epoch are recorded only with the signatures
///         of `threshold` distinct nodes of that epoch. After the first record the node set
///         changes by proposal: the admin proposes the next epoch, the nodes reshare, and the
///         epoch advances only when the proposed nodes show they hold the same keys
///         (`proposeEpoch`, `confirmEpoch`). The root keys and the attester are
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
    /// @notice Domain tag at the start of every confirmation digest (`confirmEpoch`): never the
    ///         same bytes as a root-key record, so neither serves for the other.
    bytes internal constant CONFIRMATION_TAG = "sigil-epoch-confirmation-v1";
    /// @notice Most nodes a list may hold: `recordKeys` marks the nodes it counted in one 256-bit
    ///         word, one bit per position in the list.
    uint256 internal constant MAX_NODES = 256;

    /// @notice The account allowed to change the node set.
    address public admin;
    /// @notice The account `transferAdmin` named, which becomes admin when it calls `acceptAdmin`;
    ///         zero when no transfer is pending.
    address public pendingAdmin;
    /// @notice Starts at 0; each `setNodes` and each `confirmEpoch` increments it.
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
    /// @dev Per stored list (numbered from 1 as they are stored, by `setNodes` or `proposeEpoch`),
    ///      each node's position in it plus one (0: not a node of that list).
    mapping(uint64 list => mapping(address signer => uint256)) private _signerSlot;
    /// @dev Per stored list, the node ids it uses.
    mapping(uint64 list => mapping(uint32 id => bool)) private _idTaken;
    /// @dev Lists stored so far; the number of the latest.
    uint64 private _lists;
    /// @dev The list of each epoch.
    mapping(uint64 epoch => uint64 list) private _epochList;
    mapping(uint64 epoch => RootKeys) private _rootKeys;

    /// @dev The proposed next epoch's nodes, its threshold (0: no proposal) and its list number.
    Node[] private _proposed;
    uint32 private _proposedThreshold;
    uint64 private _proposedList;
    /// @dev The signer each node id was first listed with in an epoch whose keys were recorded,
    ///      and the id (plus one) each such signer was listed with: a proposal, and `setNodes`
    ///      once keys exist, keep a node and its id together, so an id never passes to another
    ///      node and a node never changes its id. A withdrawn proposal, or a list that never got
    ///      its keys, binds nothing.
    mapping(uint32 id => address signer) private _idSigner;
    mapping(address signer => uint64) private _signerId;

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
    /// @notice The admin proposed the node list and threshold of epoch `epoch`; the nodes of the
    ///         current epoch and of the proposed one now reshare the root keys.
    event EpochProposed(uint64 epoch, uint32 threshold, uint256 nodeCount);
    /// @notice The proposal of epoch `epoch` was withdrawn by the admin (or replaced by `setNodes`).
    event ProposalCancelled(uint64 epoch);
    /// @notice The proposed nodes proved they hold the same root keys: epoch `epoch` began.
    event EpochAdvanced(uint64 epoch, uint32 threshold, uint256 nodeCount);

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
    /// @notice Signature `index` is malformed, high-s, not by a node of the list it must come
    ///         from (the current epoch's, or the proposed one's), or by a node already counted.
    error BadKeySignature(uint256 index);
    /// @notice The current epoch `epoch` has no root-key record yet, so it cannot hand its keys on.
    error KeysNotRecorded(uint64 epoch);
    /// @notice Epoch `epoch` is proposed already; `cancelProposal` withdraws it.
    error ProposalPending(uint64 epoch);
    /// @notice No next epoch is proposed.
    error NoProposal();
    /// @notice Only `valid` signatures were given where `threshold` are needed (for
    ///         `confirmEpoch`: every proposed node).
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
    ///      A pending proposal is cancelled. `setNodes` is how a network starts; once its keys are
    ///      recorded, the node set changes by `proposeEpoch`, whose nodes reshare the keys, while
    ///      a list set here would need keys it cannot have (`recordKeys` insists on the first),
    ///      and may not give an id to another signer or a signer another id (`BadNode(index)`).
    function setNodes(Node[] calldata nodes_, uint32 threshold_) external onlyAdmin {
        _checkList(nodes_, threshold_);
        _cancelProposal();
        uint64 next = epoch + 1;
        delete _nodes;
        // Once keys exist, ids are the nodes': the reset may not hand one to another signer.
        uint64 list = _storeList(nodes_, _nodes, keysEpoch != 0);
        _epochList[next] = list;
        threshold = threshold_;
        epoch = next;
        emit NodesSet(next, threshold_, nodes_.length);
    }

    /// @notice Proposes the next epoch: its node list and threshold, under the rules of
    ///         `setNodes`. The nodes of both epochs reshare the root keys; the epoch advances
    ///         when `confirmEpoch` shows the new nodes hold them. Only with the current epoch's
    ///         keys recorded (`KeysNotRecorded`), one proposal at a time (`ProposalPending`).
    ///         Node ids are the nodes' own: an id stays with the signer it had in the first epoch
    ///         whose keys were recorded, and a signer with its id (`BadNode(index)` for a node
    ///         that takes another's id or changes its own).
    function proposeEpoch(Node[] calldata nodes_, uint32 threshold_) external onlyAdmin {
        uint64 current = epoch;
        if (current == 0 || keysEpoch != current) revert KeysNotRecorded(current);
        if (_proposedThreshold != 0) revert ProposalPending(current + 1);
        _checkList(nodes_, threshold_);
        delete _proposed;
        _proposedList = _storeList(nodes_, _proposed, true);
        _proposedThreshold = threshold_;
        emit EpochProposed(current + 1, threshold_, nodes_.length);
    }

    /// @notice Withdraws the proposed epoch (reverts `NoProposal` when there is none).
    function cancelProposal() external onlyAdmin {
        if (_proposedThreshold == 0) revert NoProposal();
        _cancelProposal();
    }

    /// @notice Starts the proposed epoch once its nodes show they hold the network's root keys:
    ///         the same ECDSA key, BLS key and attester as the first record (`KeysChanged`
    ///         otherwise), with the BLS public shares of the new nodes, signed (as for
    ///         `recordKeys`, each r ‖ s ‖ v) by every proposed node over
    ///         `confirmationDigest(epoch + 1, proposalId, …)`. Every one, not the threshold: a
    ///         reshare can finish at some nodes and not others (a node may withhold its last
    ///         message from some), and an epoch confirmed by fewer than all could leave fewer
    ///         than its threshold of honest holders. A proposed node that cannot confirm is
    ///         proposed out again. Anyone may call. The record is the new epoch's `recordKeys`.
    function confirmEpoch(
        bytes calldata ecdsaKey,
        bytes calldata blsKey,
        bytes32 blsShares,
        address attester_,
        bytes[] calldata signatures
    ) external {
        uint32 threshold_ = _proposedThreshold;
        if (threshold_ == 0) revert NoProposal();
        _checkKeys(ecdsaKey, blsKey, attester_);
        uint64 next = epoch + 1;
        uint256 valid = _countSigners(
            _proposedList, confirmationDigest(next, _proposedList, ecdsaKey, blsKey, blsShares, attester_), signatures
        );
        // casting to 'uint32' is safe because a list holds at most MAX_NODES nodes
        // forge-lint: disable-next-line(unsafe-typecast)
        uint32 everyone = uint32(_proposed.length);
        if (valid < everyone) revert NotEnoughSignatures(valid, everyone);
        _rootKeys[next] = RootKeys({ecdsaKey: ecdsaKey, blsKey: blsKey, blsShares: blsShares, attester: attester_});
        _advance(next, threshold_, attester_);
    }

    /// @notice The proposed next epoch: its number, threshold and nodes, and the proposal's id
    ///         (never the same for two proposals, a withdrawn one's included), which its
    ///         confirmations sign (0, 0, none and 0 when no epoch is proposed).
    function proposal()
        external
        view
        returns (uint64 epoch_, uint32 threshold_, Node[] memory nodes_, uint64 proposalId)
    {
        if (_proposedThreshold == 0) return (0, 0, new Node[](0), 0);
        return (epoch + 1, _proposedThreshold, _proposed, _proposedList);
    }

    /// @notice Digest the proposed nodes sign to confirm they hold the root keys in the epoch of
    ///         proposal `proposalId`: keccak256("sigil-epoch-confirmation-v1" ‖ chainid (32 bytes)
    ///         ‖ this contract (20 bytes) ‖ epoch (32 bytes) ‖ proposalId (32 bytes) ‖
    ///         keccak256(ecdsaKey) ‖ keccak256(blsKey) ‖ blsShares (32 bytes) ‖ attester (20 bytes)).
    ///         The proposal id ties a confirmation to one proposal: signatures made for a withdrawn
    ///         proposal, or for another proposal of the same epoch, confirm nothing else.
    function confirmationDigest(
        uint64 epoch_,
        uint64 proposalId,
        bytes calldata ecdsaKey,
        bytes calldata blsKey,
        bytes32 blsShares,
        address attester_
    ) public view returns (bytes32) {
        // In two parts (the same bytes as one), for the compiler's stack.
        bytes memory head =
            abi.encodePacked(CONFIRMATION_TAG, block.chainid, address(this), uint256(epoch_), uint256(proposalId));
        return keccak256(abi.encodePacked(head, keccak256(ecdsaKey), keccak256(blsKey), blsShares, attester_));
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
        _checkKeys(ecdsaKey, blsKey, attester_);
        uint256 valid = _countSigners(
            _epochList[current], rootKeysDigest(current, ecdsaKey, blsKey, blsShares, attester_), signatures
        );
        if (valid < threshold) revert NotEnoughSignatures(valid, threshold);
        _rootKeys[current] = RootKeys({ecdsaKey: ecdsaKey, blsKey: blsKey, blsShares: blsShares, attester: attester_});
        _bindIds(_nodes);
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

    /// @dev Reverts unless `nodes_` and `threshold_` satisfy the rules of `setNodes`.
    function _checkList(Node[] calldata nodes_, uint32 threshold_) private pure {
        uint256 n = nodes_.length;
        if (n > MAX_NODES) revert TooManyNodes(n);
        if (threshold_ < 2 || threshold_ > n || threshold_ < (2 * n + 2) / 3) revert BadThreshold(threshold_, n);
    }

    /// @dev Appends `nodes_` to the empty `into` as a new list, indexing its signers and ids under
    ///      a fresh list number, which it returns. With `keepIds`, an id bound to another signer,
    ///      or a signer bound to another id (`_bindIds`), is refused.
    function _storeList(Node[] calldata nodes_, Node[] storage into, bool keepIds) private returns (uint64 list) {
        list = ++_lists;
        mapping(address => uint256) storage slotOf = _signerSlot[list];
        mapping(uint32 => bool) storage idTaken = _idTaken[list];
        for (uint256 i = 0; i < nodes_.length; i++) {
            Node calldata node = nodes_[i];
            if (node.signer == address(0) || slotOf[node.signer] != 0 || idTaken[node.id]) revert BadNode(i);
            if (keepIds) {
                address bound = _idSigner[node.id];
                uint64 boundId = _signerId[node.signer];
                if ((bound != address(0) && bound != node.signer) || (boundId != 0 && boundId != uint64(node.id) + 1)) {
                    revert BadNode(i);
                }
            }
            slotOf[node.signer] = i + 1;
            idTaken[node.id] = true;
            into.push(node);
        }
    }

    /// @dev Reverts with `BadKeys` unless the keys are well formed, and with `KeysChanged` unless
    ///      they and the attester are those of the first record (when there is one).
    function _checkKeys(bytes calldata ecdsaKey, bytes calldata blsKey, address attester_) private view {
        if (!_wellFormed(ecdsaKey, blsKey, attester_)) revert BadKeys();
        if (keysEpoch == 0) return;
        RootKeys storage first = _rootKeys[keysEpoch];
        if (
            keccak256(ecdsaKey) != keccak256(first.ecdsaKey) || keccak256(blsKey) != keccak256(first.blsKey)
                || attester_ != first.attester
        ) revert KeysChanged();
    }

    /// @dev Makes the proposed list epoch `next` with threshold `threshold_`, its keys recorded.
    function _advance(uint64 next, uint32 threshold_, address attester_) private {
        delete _nodes;
        uint256 n = _proposed.length;
        for (uint256 i = 0; i < n; i++) {
            _nodes.push(_proposed[i]);
        }
        _bindIds(_nodes);
        _epochList[next] = _proposedList;
        delete _proposed;
        _proposedThreshold = 0;
        _proposedList = 0;
        threshold = threshold_;
        epoch = next;
        keysEpoch = next;
        attester = attester_;
        emit NodesSet(next, threshold_, n);
        emit KeysRecorded(next, attester_);
        emit EpochAdvanced(next, threshold_, n);
    }

    /// @dev Binds each id of `nodes_` to its signer and back, where neither is bound yet.
    function _bindIds(Node[] storage nodes_) private {
        for (uint256 i = 0; i < nodes_.length; i++) {
            Node storage node = nodes_[i];
            if (_idSigner[node.id] == address(0)) _idSigner[node.id] = node.signer;
            if (_signerId[node.signer] == 0) _signerId[node.signer] = uint64(node.id) + 1;
        }
    }

    /// @dev Drops the proposed epoch, if any, with `ProposalCancelled`.
    function _cancelProposal() private {
        if (_proposedThreshold == 0) return;
        delete _proposed;
        _proposedThreshold = 0;
        _proposedList = 0;
        emit ProposalCancelled(epoch + 1);
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
    ///      first one that is not by a node of list `list` or is by a node counted before.
    function _countSigners(uint64 list, bytes32 digest, bytes[] calldata signatures) private view returns (uint256) {
        mapping(address => uint256) storage slotOf = _signerSlot[list];
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
