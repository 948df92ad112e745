// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {PKPNFT} from "./PKPNFT.sol";
import {PKPPermissions} from "./PKPPermissions.sol";

/// @title PKPHelper
/// @notice Mints a PKP and sets its permissions in one transaction. The helper is the minter
///         (so the PKP's key id is `pkpNft.keyIdFor(helper, keccak256(user ‖ salt))`, see
///         `keyIdFor`) and holds the NFT while it adds the permissions.
contract PKPHelper {
    PKPNFT public immutable pkpNft;
    PKPPermissions public immutable permissions;

    event MintGrantBurned(uint256 indexed tokenId, bytes ipfsCid, address minter);
    event KeyClaimed(uint256 indexed tokenId, uint256 authMethodType, bytes id);
    event ActionKeyClaimed(uint256 indexed tokenId, bytes ipfsCid, bytes32 derivedKeyId);

    /// @notice `ipfsCid` is not a CIDv0's binary form, the 34-byte SHA-256 multihash
    ///         `0x12 0x20 ‖ digest` (the text `Qm…` is its base58 encoding).
    error NotSha256Multihash(bytes ipfsCid);

    constructor(PKPNFT pkpNft_, PKPPermissions permissions_) {
        pkpNft = pkpNft_;
        permissions = permissions_;
    }

    /// @notice Key id of a PKP minted through this helper by `user` with `salt`.
    function keyIdFor(address user, bytes32 salt) public view returns (bytes32) {
        return pkpNft.keyIdFor(address(this), _innerSalt(user, salt));
    }

    /// @notice Mints a PKP, permits the given actions and addresses, then transfers the NFT to
    ///         the caller. Each action is an IPFS CIDv0 as its 34-byte SHA-256 multihash
    ///         (`NotSha256Multihash` otherwise).
    function mintWithPermissions(
        bytes32 salt,
        bytes calldata pubkey,
        bytes calldata attestation,
        bytes[] calldata actions,
        address[] calldata addresses
    ) external returns (uint256 tokenId) {
        for (uint256 i = 0; i < actions.length; i++) {
            _checkCid(actions[i]);
        }
        tokenId = pkpNft.mint(_innerSalt(msg.sender, salt), pubkey, attestation);
        for (uint256 i = 0; i < actions.length; i++) {
            permissions.addPermittedAction(tokenId, actions[i]);
        }
        for (uint256 i = 0; i < addresses.length; i++) {
            permissions.addPermittedAddress(tokenId, addresses[i]);
        }
        pkpNft.transferFrom(address(this), msg.sender, tokenId);
    }

    /// @notice An auth method to permit at mint: its type, id, the public key that proves it (a
    ///         WebAuthn credential's COSE key; empty when the method has none) and its scopes.
    struct NewAuthMethod {
        uint256 authMethodType;
        bytes id;
        bytes userPubkey;
        uint256 scopes;
    }

    /// @notice Mints a PKP and permits the given auth methods. With `sendToItself` the NFT goes to
    ///         the PKP's own address, so only its auth methods control it: a key for someone
    ///         without a wallet. Otherwise the caller receives it.
    function mintWithAuthMethods(
        bytes32 salt,
        bytes calldata pubkey,
        bytes calldata attestation,
        NewAuthMethod[] calldata methods,
        bool sendToItself
    ) external returns (uint256 tokenId) {
        tokenId = pkpNft.mint(_innerSalt(msg.sender, salt), pubkey, attestation);
        for (uint256 i = 0; i < methods.length; i++) {
            NewAuthMethod calldata m = methods[i];
            permissions.addPermittedAuthMethodWithPubkey(tokenId, m.authMethodType, m.id, m.userPubkey, m.scopes);
        }
        address to = sendToItself ? pkpNft.getEthAddress(tokenId) : msg.sender;
        pkpNft.transferFrom(address(this), to, tokenId);
    }

    /// @notice Key id of the PKP that auth method (`authMethodType`, `id`) may claim: a key
    ///         that exists (its public key is known) before anyone mints it.
    function claimKeyIdFor(uint256 authMethodType, bytes calldata id) public view returns (bytes32) {
        return pkpNft.keyIdFor(address(this), _claimSalt(authMethodType, id));
    }

    /// @notice Claims the PKP derived from an auth method: mints it (the attestation is given by
    ///         the nodes only to whoever proves the auth method), permits that auth method to sign
    ///         anything, and sends the NFT to the PKP's own address, so only the auth method
    ///         controls it. Anyone may send the transaction: whoever does, the outcome is the same.
    function claimKey(uint256 authMethodType, bytes calldata id, bytes calldata pubkey, bytes calldata attestation)
        external
        returns (uint256 tokenId)
    {
        tokenId = pkpNft.mint(_claimSalt(authMethodType, id), pubkey, attestation);
        permissions.addPermittedAuthMethod(tokenId, authMethodType, id, 1);
        pkpNft.transferFrom(address(this), pkpNft.getEthAddress(tokenId), tokenId);
        emit KeyClaimed(tokenId, authMethodType, id);
    }

    /// @notice Key id of the PKP that action `ipfsCid` claims as `derivedKeyId` (its
    ///         `Lit.Actions.claimKey`): a key that exists (its public key is known) before anyone
    ///         mints it, and that no other action can claim.
    function actionClaimKeyIdFor(bytes calldata ipfsCid, bytes32 derivedKeyId) public view returns (bytes32) {
        return pkpNft.keyIdFor(address(this), _actionClaimSalt(ipfsCid, derivedKeyId));
    }

    /// @notice Mints the PKP an action claimed (`Lit.Actions.claimKey`): the network attests it
    ///         only while that action runs and asks for it. The PKP permits that action and owns
    ///         itself, so only the action (signing with the PKP) can ever change its permissions.
    ///         Anyone may send the transaction: whoever does, the outcome is the same, and the
    ///         attestation is bound to `ipfsCid`, so it mints nothing for another action.
    function claimActionKey(bytes calldata ipfsCid, bytes32 derivedKeyId, bytes calldata pubkey, bytes calldata attestation)
        external
        returns (uint256 tokenId)
    {
        _checkCid(ipfsCid);
        tokenId = pkpNft.mint(_actionClaimSalt(ipfsCid, derivedKeyId), pubkey, attestation);
        permissions.addPermittedAction(tokenId, ipfsCid);
        pkpNft.transferFrom(address(this), pkpNft.getEthAddress(tokenId), tokenId);
        emit ActionKeyClaimed(tokenId, ipfsCid, derivedKeyId);
    }

    /// @notice Mints a PKP, permits exactly one action and burns the NFT, atomically: afterwards
    ///         no one can change the PKP's permissions, and only that action may use the key.
    ///         `ipfsCid` is the action's IPFS CIDv0 as its 34-byte SHA-256 multihash
    ///         (`0x12 0x20 ‖ digest`); anything else reverts with `NotSha256Multihash`, since a
    ///         malformed CID would seal a key that no action can ever use.
    function mintGrantBurn(bytes32 salt, bytes calldata pubkey, bytes calldata attestation, bytes calldata ipfsCid)
        external
        returns (uint256 tokenId)
    {
        _checkCid(ipfsCid);
        tokenId = pkpNft.mint(_innerSalt(msg.sender, salt), pubkey, attestation);
        permissions.addPermittedAction(tokenId, ipfsCid);
        pkpNft.burn(tokenId);
        emit MintGrantBurned(tokenId, ipfsCid, msg.sender);
    }

    function _checkCid(bytes calldata ipfsCid) private pure {
        if (ipfsCid.length != 34 || ipfsCid[0] != 0x12 || ipfsCid[1] != 0x20) revert NotSha256Multihash(ipfsCid);
    }

    /// @dev keccak256("sigil-claim-v1" ‖ authMethodType (32 bytes) ‖ keccak256(id)): never a
    ///      user's inner salt, which hashes 52 bytes.
    function _claimSalt(uint256 authMethodType, bytes calldata id) private pure returns (bytes32) {
        return keccak256(abi.encodePacked("sigil-claim-v1", authMethodType, keccak256(id)));
    }

    /// @dev keccak256("sigil-action-claim-v1" ‖ ipfsCid (34 bytes) ‖ derivedKeyId): never a
    ///      user's inner salt (52 bytes hashed) nor an auth method's claim salt (another tag).
    function _actionClaimSalt(bytes calldata ipfsCid, bytes32 derivedKeyId) private pure returns (bytes32) {
        return keccak256(abi.encodePacked("sigil-action-claim-v1", ipfsCid, derivedKeyId));
    }

    function _innerSalt(address user, bytes32 salt) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(user, salt));
    }
}
