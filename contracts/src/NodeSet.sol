// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title NodeSet
/// @notice The current set of Sigil nodes, the signing threshold and the network's attestation
///         address. Every change of the node list starts a new epoch.
contract NodeSet {
    /// @notice One node: its id, its X25519 identity public key and the URL it serves on.
    struct Node {
        uint32 id;
        bytes32 identityKey;
        string url;
    }

    /// @notice The account allowed to change the node set.
    address public admin;
    /// @notice The account `transferAdmin` named, which becomes admin when it calls `acceptAdmin`;
    ///         zero when no transfer is pending.
    address public pendingAdmin;
    /// @notice Starts at 0; each `setNodes` increments it.
    uint64 public epoch;
    /// @notice Number of nodes needed to use a key.
    uint32 public threshold;
    /// @notice Address whose signatures attest newly minted PKPs (checked with ecrecover).
    address public attester;

    /// @notice The PKP contracts of this network, so that a node configured with NodeSet's
    ///         address alone finds everything it reads.
    address public pkpNft;
    address public pkpPermissions;
    address public pkpHelper;

    Node[] private _nodes;

    event NodesSet(uint64 epoch, uint32 threshold, uint256 nodeCount);
    event AttesterSet(address attester);
    event AdminTransferStarted(address admin, address pendingAdmin);
    event AdminTransferred(address previousAdmin, address newAdmin);
    event ContractsSet(address pkpNft, address pkpPermissions, address pkpHelper);

    error NotAdmin(address caller);
    error BadThreshold(uint32 threshold, uint256 nodes);
    error NotPendingAdmin(address caller);

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    constructor(address admin_) {
        admin = admin_;
    }

    /// @notice Replaces the node list and threshold and starts a new epoch.
    /// @dev With n = nodes_.length, `threshold_` must satisfy max(2, ceil(2n/3)) <= threshold_ <= n
    ///      (ceil(2n/3) = (2n + 2) / 3, the nodes' `sigil_tss::threshold_for(n)`), so a list of
    ///      fewer than 2 nodes is always refused. Anything else reverts with `BadThreshold`.
    function setNodes(Node[] calldata nodes_, uint32 threshold_) external onlyAdmin {
        uint256 n = nodes_.length;
        if (threshold_ < 2 || threshold_ > n || threshold_ < (2 * n + 2) / 3) revert BadThreshold(threshold_, n);
        delete _nodes;
        for (uint256 i = 0; i < nodes_.length; i++) {
            _nodes.push(nodes_[i]);
        }
        threshold = threshold_;
        epoch += 1;
        emit NodesSet(epoch, threshold_, nodes_.length);
    }

    /// @notice Sets the network's attestation address.
    function setAttester(address attester_) external onlyAdmin {
        attester = attester_;
        emit AttesterSet(attester_);
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
}
