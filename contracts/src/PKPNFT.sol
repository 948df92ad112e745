// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {NodeSet} from "./NodeSet.sol";
import {Signatures} from "./Signatures.sol";

/// @title PKPNFT
/// @notice One NFT per programmable key pair (PKP). The key is derived by the network from its
///         root key and a key id fixed by the minter's address and a salt; the network attests
///         the resulting public key, and this contract checks that attestation against the
///         attester address NodeSet recorded with the nodes' signatures (`NodeSet.attester`)
///         before minting. The token id is `uint256(keccak256(pubkey))`; the token's owner
///         controls the PKP's permissions.
contract PKPNFT is ERC721 {
    /// @notice Domain tag at the start of every mint attestation digest.
    bytes internal constant ATTESTATION_TAG = "sigil-mint-attestation-v1";

    NodeSet public immutable nodeSet;

    struct Key {
        bytes pubkey;
        bytes32 keyId;
    }

    mapping(uint256 tokenId => Key) private _keys;
    mapping(bytes32 keyId => bool) private _keyIdUsed;

    /// @notice What a mint request pays, in wei (set by the NodeSet admin; 0 on a dev network,
    ///         where the request still costs its gas).
    uint256 public mintFee;
    /// @notice Who requested the mint of each key id. The network attests a key id only after a
    ///         request for it, so asking for attestations (which spend presignatures) costs gas
    ///         and the fee, and a wallet without funds cannot ask at all.
    mapping(bytes32 keyId => address) public mintRequester;

    event PKPMinted(uint256 indexed tokenId, bytes32 indexed keyId, bytes pubkey, address owner);
    event MintRequested(bytes32 indexed keyId, address indexed requester, uint256 fee);
    event MintFeeSet(uint256 fee);

    error BadPubkey();
    error KeyIdUsed(bytes32 keyId);
    error BadAttestation(address recovered);
    error UnknownToken(uint256 tokenId);
    /// @notice The public key's token was minted before (and burned since).
    error TokenExists(uint256 tokenId);
    error MintFeeTooLow(uint256 paid, uint256 fee);
    error MintAlreadyRequested(bytes32 keyId);
    error NotAdmin(address caller);

    constructor(NodeSet nodeSet_) ERC721("Sigil PKP", "PKP") {
        nodeSet = nodeSet_;
    }

    /// @notice Requests the mint of `keyId` (as `keyIdFor`, or PKPHelper's `keyIdFor`), paying
    ///         `mintFee`: the nodes attest a key id only once it has been requested.
    function requestMint(bytes32 keyId) external payable {
        if (msg.value < mintFee) revert MintFeeTooLow(msg.value, mintFee);
        if (mintRequester[keyId] != address(0) || _keyIdUsed[keyId]) revert MintAlreadyRequested(keyId);
        mintRequester[keyId] = msg.sender;
        emit MintRequested(keyId, msg.sender, msg.value);
    }

    /// @notice Sets the mint fee (NodeSet admin only).
    function setMintFee(uint256 fee) external {
        if (msg.sender != nodeSet.admin()) revert NotAdmin(msg.sender);
        mintFee = fee;
        emit MintFeeSet(fee);
    }

    /// @notice Sends the fees collected to `to` (NodeSet admin only).
    function withdrawFees(address payable to) external {
        if (msg.sender != nodeSet.admin()) revert NotAdmin(msg.sender);
        (bool ok,) = to.call{value: address(this).balance}("");
        require(ok, "transfer failed");
    }

    /// @notice Key id of a PKP minted by `minter` with `salt`: keccak256(minter ‖ salt).
    function keyIdFor(address minter, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(minter, salt));
    }

    /// @notice Digest the network signs to attest `pubkey` as the key for `keyId`:
    ///         keccak256("sigil-mint-attestation-v1" ‖ chainid (32 bytes) ‖ this contract
    ///         (20 bytes) ‖ keyId (32 bytes) ‖ pubkey (65 bytes)).
    function attestationDigest(bytes32 keyId, bytes memory pubkey) public view returns (bytes32) {
        return keccak256(abi.encodePacked(ATTESTATION_TAG, block.chainid, address(this), keyId, pubkey));
    }

    /// @notice Mints the PKP with key id `keyIdFor(msg.sender, salt)` to the caller.
    /// @param pubkey uncompressed secp256k1 public key (65 bytes, 0x04 ‖ x ‖ y)
    /// @param attestation the attester's signature over `attestationDigest`, r ‖ s ‖ v (65 bytes;
    ///        v is 27/28, or 0/1; s at most half the curve order)
    function mint(bytes32 salt, bytes calldata pubkey, bytes calldata attestation) external returns (uint256 tokenId) {
        bytes32 keyId = keyIdFor(msg.sender, salt);
        if (pubkey.length != 65 || pubkey[0] != 0x04) revert BadPubkey();
        if (_keyIdUsed[keyId]) revert KeyIdUsed(keyId);

        address recovered = Signatures.recover(attestationDigest(keyId, pubkey), attestation);
        if (recovered == address(0) || recovered != nodeSet.attester()) revert BadAttestation(recovered);

        tokenId = uint256(keccak256(pubkey));
        if (_keys[tokenId].pubkey.length != 0) revert TokenExists(tokenId);

        _keyIdUsed[keyId] = true;
        _keys[tokenId] = Key({pubkey: pubkey, keyId: keyId});
        _mint(msg.sender, tokenId);
        emit PKPMinted(tokenId, keyId, pubkey, msg.sender);
    }

    /// @notice Burns the token (owner or approved only). Its public key and key id stay readable,
    ///         and its permissions can never change again.
    function burn(uint256 tokenId) external {
        _update(address(0), tokenId, _msgSender());
    }

    /// @notice Uncompressed public key of a minted (possibly burned) token.
    function getPubkey(uint256 tokenId) external view returns (bytes memory) {
        return _minted(tokenId).pubkey;
    }

    /// @notice Ethereum address of the token's public key.
    function getEthAddress(uint256 tokenId) external view returns (address) {
        bytes memory pubkey = _minted(tokenId).pubkey;
        bytes32 h;
        assembly ("memory-safe") {
            // keccak256 of the 64 bytes after the 0x04 prefix
            h := keccak256(add(pubkey, 0x21), 64)
        }
        return address(uint160(uint256(h)));
    }

    /// @notice Key id the token was minted with.
    function getKeyId(uint256 tokenId) external view returns (bytes32) {
        return _minted(tokenId).keyId;
    }

    /// @notice Current owner, or address(0) when the token was burned or never minted.
    function ownerOrZero(uint256 tokenId) external view returns (address) {
        return _ownerOf(tokenId);
    }

    /// @notice True when the token was minted and has been burned since.
    function isBurned(uint256 tokenId) external view returns (bool) {
        return _keys[tokenId].pubkey.length != 0 && _ownerOf(tokenId) == address(0);
    }

    function _minted(uint256 tokenId) private view returns (Key storage key) {
        key = _keys[tokenId];
        if (key.pubkey.length == 0) revert UnknownToken(tokenId);
    }
}
