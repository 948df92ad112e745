// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {NodeSet} from "../src/NodeSet.sol";
import {PKPNFT} from "../src/PKPNFT.sol";
import {PKPPermissions} from "../src/PKPPermissions.sol";
import {PKPHelper} from "../src/PKPHelper.sol";

/// @notice Deploys the four contracts, sets two test nodes and has them record a test attester
///         key, and offers mint helpers.
abstract contract Fixture is Base {
    uint256 internal constant ATTESTER_KEY = 0xa77e5;
    uint256 internal constant OTHER_KEY = 0xbad;
    /// @dev Signing keys of the fixture's two nodes.
    uint256 internal constant NODE_KEY_1 = 0x5161;
    uint256 internal constant NODE_KEY_2 = 0x5162;
    /// @dev Root keys the fixture's nodes vouch for: the secp256k1 generator, SEC1 compressed, and
    ///      the BLS12-381 G1 generator, compressed.
    bytes internal constant ROOT_ECDSA_KEY = hex"0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    bytes internal constant ROOT_BLS_KEY =
        hex"97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb";
    bytes32 internal constant ROOT_BLS_SHARES = keccak256("fixture bls shares");

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
        recordAttester(vm.addr(ATTESTER_KEY));
    }

    /// @dev The fixture's nodes: ids 1 and 2, signers `vm.addr(NODE_KEY_1)` and `vm.addr(NODE_KEY_2)`.
    function fixtureNodes() internal pure returns (NodeSet.Node[] memory list) {
        list = new NodeSet.Node[](2);
        list[0] = NodeSet.Node({
            id: 1,
            identityKey: keccak256("fixture identity 1"),
            signer: vm.addr(NODE_KEY_1),
            url: "http://127.0.0.1:7000"
        });
        list[1] = NodeSet.Node({
            id: 2,
            identityKey: keccak256("fixture identity 2"),
            signer: vm.addr(NODE_KEY_2),
            url: "http://127.0.0.1:7001"
        });
    }

    /// @dev Starts a new epoch with the fixture's nodes (threshold 2) and has both of them record
    ///      `attester_` as the mint attester, as the network does.
    function recordAttester(address attester_) internal {
        vm.prank(admin);
        nodeSet.setNodes(fixtureNodes(), 2);
        bytes32 digest =
            nodeSet.rootKeysDigest(nodeSet.epoch(), ROOT_ECDSA_KEY, ROOT_BLS_KEY, ROOT_BLS_SHARES, attester_);
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = signDigest(NODE_KEY_1, digest);
        sigs[1] = signDigest(NODE_KEY_2, digest);
        nodeSet.recordKeys(ROOT_ECDSA_KEY, ROOT_BLS_KEY, ROOT_BLS_SHARES, attester_, sigs);
        assertEq(nodeSet.attester(), attester_);
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
