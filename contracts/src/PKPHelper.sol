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

    constructor(PKPNFT pkpNft_, PKPPermissions permissions_) {
        pkpNft = pkpNft_;
        permissions = permissions_;
    }

    /// @notice Key id of a PKP minted through this helper by `user` with `salt`.
    function keyIdFor(address user, bytes32 salt) public view returns (bytes32) {
        return pkpNft.keyIdFor(address(this), _innerSalt(user, salt));
    }

    /// @notice Mints a PKP, permits the given actions and addresses, then transfers the NFT to
    ///         the caller.
    function mintWithPermissions(
        bytes32 salt,
        bytes calldata pubkey,
        bytes calldata attestation,
        bytes[] calldata actions,
        address[] calldata addresses
    ) external returns (uint256 tokenId) {
        tokenId = pkpNft.mint(_innerSalt(msg.sender, salt), pubkey, attestation);
        for (uint256 i = 0; i < actions.length; i++) {
            permissions.addPermittedAction(tokenId, actions[i]);
        }
        for (uint256 i = 0; i < addresses.length; i++) {
            permissions.addPermittedAddress(tokenId, addresses[i]);
        }
        pkpNft.transferFrom(address(this), msg.sender, tokenId);
    }

    /// @notice Mints a PKP, permits exactly one action and burns the NFT, atomically: afterwards
    ///         no one can change the PKP's permissions, and only that action may use the key.
    function mintGrantBurn(bytes32 salt, bytes calldata pubkey, bytes calldata attestation, bytes calldata ipfsCid)
        external
        returns (uint256 tokenId)
    {
        tokenId = pkpNft.mint(_innerSalt(msg.sender, salt), pubkey, attestation);
        permissions.addPermittedAction(tokenId, ipfsCid);
        pkpNft.burn(tokenId);
        emit MintGrantBurned(tokenId, ipfsCid, msg.sender);
    }

    function _innerSalt(address user, bytes32 salt) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(user, salt));
    }
}
