// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {PKPNFT} from "./PKPNFT.sol";

/// @title PKPPermissions
/// @notice Who may use each PKP: permitted actions (the IPFS CIDs of action code), permitted addresses
///         and permitted auth methods with scopes. Only the PKP NFT's current owner can change
///         them, so transferring the NFT transfers control, and a burned PKP's permissions are
///         frozen for good.
contract PKPPermissions {
    /// @notice An auth method: its type, its id within that type and the scopes it is granted.
    struct AuthMethod {
        uint256 authMethodType;
        bytes id;
        uint256 scopes;
    }

    /// @notice Scope bit: may sign anything.
    uint256 public constant SCOPE_SIGN_ANYTHING = 1;
    /// @notice Scope bit: may sign personal messages only.
    uint256 public constant SCOPE_PERSONAL_MESSAGE = 2;

    PKPNFT public immutable pkpNft;

    // Each list is kept with an index (position + 1, 0 = absent) for O(1) membership;
    // removal swaps the last entry into the freed slot.
    struct Permissions {
        bytes[] actions;
        mapping(bytes32 cidHash => uint256) actionIndex;
        address[] addresses;
        mapping(address user => uint256) addressIndex;
        AuthMethod[] authMethods;
        mapping(bytes32 authKey => uint256) authMethodIndex;
        mapping(bytes32 authKey => bytes) userPubkeys;
    }

    mapping(uint256 tokenId => Permissions) private _perms;

    // The key an auth method id was first registered with, on any PKP (keccak256 of the key):
    // a passkey's credential id is public, so without this anyone could list a victim's id with
    // their own key on their own PKP, and actions would see the victim's passkey.
    mapping(bytes32 authKey => bytes32 pubkeyHash) private _boundPubkeys;

    event PermittedActionAdded(uint256 indexed tokenId, bytes ipfsCid);
    event PermittedActionRemoved(uint256 indexed tokenId, bytes ipfsCid);
    event PermittedAddressAdded(uint256 indexed tokenId, address user);
    event PermittedAddressRemoved(uint256 indexed tokenId, address user);
    event PermittedAuthMethodAdded(uint256 indexed tokenId, uint256 authMethodType, bytes id, uint256 scopes);
    event PermittedAuthMethodRemoved(uint256 indexed tokenId, uint256 authMethodType, bytes id);

    error NotOwner(uint256 tokenId, address caller);
    error TokenBurned(uint256 tokenId);
    error AlreadyPermitted();
    error NotPermitted();
    error BadScopes(uint256 scopes);
    error PubkeyBoundElsewhere(uint256 authMethodType, bytes id);

    modifier onlyTokenOwner(uint256 tokenId) {
        address owner = pkpNft.ownerOrZero(tokenId);
        if (owner != msg.sender) {
            if (owner == address(0) && pkpNft.isBurned(tokenId)) revert TokenBurned(tokenId);
            revert NotOwner(tokenId, msg.sender);
        }
        _;
    }

    constructor(PKPNFT pkpNft_) {
        pkpNft = pkpNft_;
    }

    // ---- actions ----

    function addPermittedAction(uint256 tokenId, bytes calldata ipfsCid) external onlyTokenOwner(tokenId) {
        Permissions storage p = _perms[tokenId];
        bytes32 key = keccak256(ipfsCid);
        if (p.actionIndex[key] != 0) revert AlreadyPermitted();
        p.actions.push(ipfsCid);
        p.actionIndex[key] = p.actions.length;
        emit PermittedActionAdded(tokenId, ipfsCid);
    }

    function removePermittedAction(uint256 tokenId, bytes calldata ipfsCid) external onlyTokenOwner(tokenId) {
        Permissions storage p = _perms[tokenId];
        bytes32 key = keccak256(ipfsCid);
        uint256 idx = p.actionIndex[key];
        if (idx == 0) revert NotPermitted();
        uint256 last = p.actions.length;
        if (idx != last) {
            bytes memory moved = p.actions[last - 1];
            p.actions[idx - 1] = moved;
            p.actionIndex[keccak256(moved)] = idx;
        }
        p.actions.pop();
        delete p.actionIndex[key];
        emit PermittedActionRemoved(tokenId, ipfsCid);
    }

    // ---- addresses ----

    function addPermittedAddress(uint256 tokenId, address user) external onlyTokenOwner(tokenId) {
        Permissions storage p = _perms[tokenId];
        if (p.addressIndex[user] != 0) revert AlreadyPermitted();
        p.addresses.push(user);
        p.addressIndex[user] = p.addresses.length;
        emit PermittedAddressAdded(tokenId, user);
    }

    function removePermittedAddress(uint256 tokenId, address user) external onlyTokenOwner(tokenId) {
        Permissions storage p = _perms[tokenId];
        uint256 idx = p.addressIndex[user];
        if (idx == 0) revert NotPermitted();
        uint256 last = p.addresses.length;
        if (idx != last) {
            address moved = p.addresses[last - 1];
            p.addresses[idx - 1] = moved;
            p.addressIndex[moved] = idx;
        }
        p.addresses.pop();
        delete p.addressIndex[user];
        emit PermittedAddressRemoved(tokenId, user);
    }

    // ---- auth methods ----

    function addPermittedAuthMethod(uint256 tokenId, uint256 authMethodType, bytes calldata id, uint256 scopes)
        external
        onlyTokenOwner(tokenId)
    {
        _addAuthMethod(tokenId, authMethodType, id, "", scopes);
    }

    /// @notice Permits an auth method together with the public key that proves it (a WebAuthn
    ///         credential's COSE key): nodes verify the method's assertions against `userPubkey`.
    function addPermittedAuthMethodWithPubkey(
        uint256 tokenId,
        uint256 authMethodType,
        bytes calldata id,
        bytes calldata userPubkey,
        uint256 scopes
    ) external onlyTokenOwner(tokenId) {
        _addAuthMethod(tokenId, authMethodType, id, userPubkey, scopes);
    }

    function _addAuthMethod(
        uint256 tokenId,
        uint256 authMethodType,
        bytes calldata id,
        bytes memory userPubkey,
        uint256 scopes
    ) private {
        if (scopes == 0 || scopes & ~(SCOPE_SIGN_ANYTHING | SCOPE_PERSONAL_MESSAGE) != 0) {
            revert BadScopes(scopes);
        }
        Permissions storage p = _perms[tokenId];
        bytes32 key = _authKey(authMethodType, id);
        if (p.authMethodIndex[key] != 0) revert AlreadyPermitted();
        p.authMethods.push(AuthMethod({authMethodType: authMethodType, id: id, scopes: scopes}));
        p.authMethodIndex[key] = p.authMethods.length;
        if (userPubkey.length != 0) {
            bytes32 hash = keccak256(userPubkey);
            bytes32 bound = _boundPubkeys[key];
            if (bound == bytes32(0)) _boundPubkeys[key] = hash;
            else if (bound != hash) revert PubkeyBoundElsewhere(authMethodType, id);
            p.userPubkeys[key] = userPubkey;
        }
        emit PermittedAuthMethodAdded(tokenId, authMethodType, id, scopes);
    }

    function removePermittedAuthMethod(uint256 tokenId, uint256 authMethodType, bytes calldata id)
        external
        onlyTokenOwner(tokenId)
    {
        Permissions storage p = _perms[tokenId];
        bytes32 key = _authKey(authMethodType, id);
        uint256 idx = p.authMethodIndex[key];
        if (idx == 0) revert NotPermitted();
        uint256 last = p.authMethods.length;
        if (idx != last) {
            AuthMethod memory moved = p.authMethods[last - 1];
            p.authMethods[idx - 1] = moved;
            p.authMethodIndex[_authKey(moved.authMethodType, moved.id)] = idx;
        }
        p.authMethods.pop();
        delete p.authMethodIndex[key];
        delete p.userPubkeys[key];
        emit PermittedAuthMethodRemoved(tokenId, authMethodType, id);
    }

    // ---- views ----

    function getPermittedActions(uint256 tokenId) external view returns (bytes[] memory) {
        return _perms[tokenId].actions;
    }

    function getPermittedAddresses(uint256 tokenId) external view returns (address[] memory) {
        return _perms[tokenId].addresses;
    }

    function getPermittedAuthMethods(uint256 tokenId) external view returns (AuthMethod[] memory) {
        return _perms[tokenId].authMethods;
    }

    function isPermittedAction(uint256 tokenId, bytes calldata ipfsCid) external view returns (bool) {
        return _perms[tokenId].actionIndex[keccak256(ipfsCid)] != 0;
    }

    function isPermittedAddress(uint256 tokenId, address user) external view returns (bool) {
        return _perms[tokenId].addressIndex[user] != 0;
    }

    function isPermittedAuthMethod(uint256 tokenId, uint256 authMethodType, bytes calldata id)
        external
        view
        returns (bool)
    {
        return _perms[tokenId].authMethodIndex[_authKey(authMethodType, id)] != 0;
    }

    /// @notice Scopes granted to the auth method, 0 if it is not permitted.
    function getAuthMethodScopes(uint256 tokenId, uint256 authMethodType, bytes calldata id)
        external
        view
        returns (uint256)
    {
        Permissions storage p = _perms[tokenId];
        uint256 idx = p.authMethodIndex[_authKey(authMethodType, id)];
        return idx == 0 ? 0 : p.authMethods[idx - 1].scopes;
    }

    /// @notice The public key registered with a permitted auth method (empty if none).
    function getUserPubkey(uint256 tokenId, uint256 authMethodType, bytes calldata id)
        external
        view
        returns (bytes memory)
    {
        return _perms[tokenId].userPubkeys[_authKey(authMethodType, id)];
    }

    function _authKey(uint256 authMethodType, bytes memory id) private pure returns (bytes32) {
        return keccak256(abi.encode(authMethodType, id));
    }
}
