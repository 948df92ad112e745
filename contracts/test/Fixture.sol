// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {NodeSet} from "../src/NodeSet.sol";
import {PKPNFT} from "../src/PKPNFT.sol";
import {PKPPermissions} from "../src/PKPPermissions.sol";
import {PKPHelper} from "../src/PKPHelper.sol";

/// @notice Deploys the four contracts with a test attester key and offers mint helpers.
abstract contract Fixture is Base {
    uint256 internal constant ATTESTER_KEY = 0xa77e5;
    uint256 internal constant OTHER_KEY = 0xbad;

    address internal admin = address(0xAD111);
    address internal alice = address(0xA11CE);
    address internal bob = address(0xB0B);
    address internal carol = address(0xCA201);

    NodeSet internal nodeSet;
    PKPNFT internal nft;
    PKPPermissions internal perms;
    PKPHelper internal helper;

    function setUp() public virtual {
        nodeSet = new NodeSet(admin);
        nft = new PKPNFT(nodeSet);
        perms = new PKPPermissions(nft);
        helper = new PKPHelper(nft, perms);
        vm.prank(admin);
        nodeSet.setAttester(vm.addr(ATTESTER_KEY));
    }

    /// @dev A well-formed (0x04-prefixed, 65-byte) public key; not necessarily on the curve.
    function pubkeyFor(uint256 i) internal pure returns (bytes memory) {
        return abi.encodePacked(bytes1(0x04), keccak256(abi.encode("x", i)), keccak256(abi.encode("y", i)));
    }

    function signDigest(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function attest(uint256 key, bytes32 keyId, bytes memory pubkey) internal view returns (bytes memory) {
        return signDigest(key, nft.attestationDigest(keyId, pubkey));
    }

    function recoverOf(bytes32 digest, bytes memory sig) internal pure returns (address) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        return ecrecover(digest, v, r, s);
    }

    function mintAs(address who, bytes32 salt, bytes memory pubkey) internal returns (uint256) {
        bytes memory att = attest(ATTESTER_KEY, nft.keyIdFor(who, salt), pubkey);
        vm.prank(who);
        return nft.mint(salt, pubkey, att);
    }
}
