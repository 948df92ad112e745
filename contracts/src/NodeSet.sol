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
    event AdminTransferred(address previousAdmin, address newAdmin);
    event ContractsSet(address pkpNft, address pkpPermissions, address pkpHelper);

    error NotAdmin(address caller);
    error BadThreshold(uint32 threshold, uint256 nodes);

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    constructor(address admin_) {
        admin = admin_;
    }

    /// @notice Replaces the node list and threshold and starts a new epoch.
    /// @dev `threshold_` must satisfy 1 <= threshold_ <= nodes_.length.
    function setNodes(Node[] calldata nodes_, uint32 threshold_) external onlyAdmin {
        if (threshold_ == 0 || threshold_ > nodes_.length) revert BadThreshold(threshold_, nodes_.length);
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

    /// @notice Hands the admin role to `newAdmin`.
    function transferAdmin(address newAdmin) external onlyAdmin {
        address old = admin;
        admin = newAdmin;
        emit AdminTransferred(old, newAdmin);
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
