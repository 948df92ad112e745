// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {NodeSet} from "../src/NodeSet.sol";

contract NodeSetTest is Base {
    /// @dev Node i of `nodes(n)` signs with private key NODE_KEY_BASE + i.
    uint256 internal constant NODE_KEY_BASE = 0x1001;
    /// @dev The admin's own signing key (the admin account is `vm.addr(ADMIN_KEY)`).
    uint256 internal constant ADMIN_KEY = 0xAD111;
    /// @dev Root keys the tests record: the secp256k1 generator, SEC1 compressed, and the
    ///      BLS12-381 G1 generator, compressed.
    bytes internal constant ECDSA_KEY = hex"0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    bytes internal constant BLS_KEY =
        hex"97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb";
    bytes32 internal constant BLS_SHARES = keccak256("bls shares");
    /// @dev `vm.addr(0xa77e5)`, the fixture's attester.
    address internal constant ATTESTER = 0x83Ae882bE86b8Ab6C4Eb270ee2B0c0383EC41f3C;

    address internal admin = vm.addr(ADMIN_KEY);
    address internal stranger = address(0xB0B);
    NodeSet internal nodeSet;

    function setUp() public {
        nodeSet = new NodeSet(admin);
    }

    function nodes(uint256 n) internal pure returns (NodeSet.Node[] memory list) {
        list = new NodeSet.Node[](n);
        for (uint256 i = 0; i < n; i++) {
            list[i] = NodeSet.Node({
                // casting to 'uint32' is safe because the tests use a handful of nodes
                // forge-lint: disable-next-line(unsafe-typecast)
                id: uint32(i + 1),
                identityKey: keccak256(abi.encode("identity", i)),
                signer: vm.addr(NODE_KEY_BASE + i),
                url: string.concat("http://127.0.0.1:", i == 0 ? "7000" : i == 1 ? "7001" : i == 2 ? "7002" : "7999")
            });
        }
    }

    function test_constructor_initialState() public view {
        assertEq(nodeSet.admin(), admin);
        assertEq(nodeSet.pendingAdmin(), address(0));
        assertEq(nodeSet.epoch(), 0);
        assertEq(nodeSet.threshold(), 0);
        assertEq(nodeSet.attester(), address(0));
        assertEq(nodeSet.keysEpoch(), 0);
        assertEq(nodeSet.nodeCount(), 0);
        assertEq(nodeSet.getNodes().length, 0);
    }

    function test_setNodes_storesListThresholdAndEpoch() public {
        NodeSet.Node[] memory list = nodes(3);
        vm.expectEmit(address(nodeSet));
        emit NodeSet.NodesSet(1, 2, 3);
        vm.prank(admin);
        nodeSet.setNodes(list, 2);

        assertEq(nodeSet.epoch(), 1);
        assertEq(nodeSet.threshold(), 2);
        assertEq(nodeSet.nodeCount(), 3);
        NodeSet.Node[] memory got = nodeSet.getNodes();
        assertEq(got.length, 3);
        for (uint256 i = 0; i < 3; i++) {
            assertEq(got[i].id, list[i].id);
            assertEq(got[i].identityKey, list[i].identityKey);
            assertEq(got[i].signer, list[i].signer);
            assertEq(got[i].url, list[i].url);
        }
    }

    function test_setNodes_replacesListAndIncrementsEpoch() public {
        vm.startPrank(admin);
        nodeSet.setNodes(nodes(4), 3);
        NodeSet.Node[] memory list = nodes(2);
        list[0].url = "https://node-a.example";
        vm.expectEmit(address(nodeSet));
        emit NodeSet.NodesSet(2, 2, 2);
        nodeSet.setNodes(list, 2);
        vm.stopPrank();

        assertEq(nodeSet.epoch(), 2);
        assertEq(nodeSet.threshold(), 2);
        assertEq(nodeSet.nodeCount(), 2);
        NodeSet.Node[] memory got = nodeSet.getNodes();
        assertEq(got.length, 2);
        assertEq(got[0].url, "https://node-a.example");
        assertEq(got[1].id, 2);
    }

    function test_setNodes_thresholdEqualToCountIsAllowed() public {
        vm.prank(admin);
        nodeSet.setNodes(nodes(3), 3);
        assertEq(nodeSet.threshold(), 3);
        assertEq(nodeSet.nodeCount(), 3);
    }

    /// @dev The smallest threshold accepted is ceil(2n/3), `sigil_tss::threshold_for(n)`.
    function test_setNodes_acceptsTwoThirdsThreshold() public {
        uint32[4] memory n = [uint32(3), 4, 5, 7];
        uint32[4] memory t = [uint32(2), 3, 4, 5];
        vm.startPrank(admin);
        for (uint256 i = 0; i < n.length; i++) {
            nodeSet.setNodes(nodes(n[i]), t[i]);
            assertEq(nodeSet.threshold(), t[i], "threshold");
            assertEq(nodeSet.nodeCount(), n[i], "node count");
        }
        vm.stopPrank();
        assertEq(nodeSet.epoch(), 4);
    }

    function _expectBadThreshold(uint256 n, uint32 t) internal {
        NodeSet.Node[] memory list = nodes(n);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadThreshold.selector, t, n));
        vm.prank(admin);
        nodeSet.setNodes(list, t);
    }

    function test_setNodes_revertsBelowTwoThirds_3nodes() public {
        _expectBadThreshold(3, 1);
        assertEq(nodeSet.epoch(), 0);
    }

    function test_setNodes_revertsBelowTwoThirds_4nodes() public {
        _expectBadThreshold(4, 2);
        _expectBadThreshold(4, 1);
        assertEq(nodeSet.epoch(), 0);
    }

    function test_setNodes_revertsBelowTwoThirds_5nodes() public {
        _expectBadThreshold(5, 3);
        _expectBadThreshold(5, 2);
        assertEq(nodeSet.epoch(), 0);
    }

    function test_setNodes_revertsBelowTwoThirds_7nodes() public {
        _expectBadThreshold(7, 4);
        _expectBadThreshold(7, 3);
        assertEq(nodeSet.epoch(), 0);
    }

    function test_setNodes_revertsOnThresholdOne() public {
        for (uint256 n = 1; n <= 7; n++) {
            _expectBadThreshold(n, 1);
        }
        assertEq(nodeSet.epoch(), 0);
    }

    function test_setNodes_refusesASingleNode() public {
        // t >= 2 > n: one node can never form a network
        _expectBadThreshold(1, 0);
        _expectBadThreshold(1, 1);
        _expectBadThreshold(1, 2);
        assertEq(nodeSet.epoch(), 0);
    }

    /// @dev Every (n, t) up to 31 nodes (`sigil_tss::MAX_PARTIES`): accepted exactly when
    ///      2 <= t <= n and 3t >= 2n (t >= 2n/3, i.e. t >= ceil(2n/3)).
    function test_setNodes_thresholdRuleForEveryCount() public {
        vm.startPrank(admin);
        uint64 epoch;
        for (uint256 n = 0; n <= 31; n++) {
            NodeSet.Node[] memory list = nodes(n);
            for (uint256 t = 0; t <= n + 1; t++) {
                // casting to 'uint32' is safe because t is at most 32
                // forge-lint: disable-next-line(unsafe-typecast)
                uint32 t32 = uint32(t);
                if (t >= 2 && t <= n && 3 * t >= 2 * n) {
                    nodeSet.setNodes(list, t32);
                    epoch++;
                    assertEq(nodeSet.threshold(), t, "threshold");
                } else {
                    vm.expectRevert(abi.encodeWithSelector(NodeSet.BadThreshold.selector, t32, n));
                    nodeSet.setNodes(list, t32);
                }
            }
        }
        vm.stopPrank();
        assertEq(nodeSet.epoch(), epoch);
    }

    function test_setNodes_revertsForNonAdmin() public {
        NodeSet.Node[] memory list = nodes(3);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.setNodes(list, 2);
    }

    function test_setNodes_revertsOnZeroThreshold() public {
        NodeSet.Node[] memory list = nodes(3);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadThreshold.selector, uint32(0), uint256(3)));
        vm.prank(admin);
        nodeSet.setNodes(list, 0);
    }

    function test_setNodes_revertsOnThresholdAboveCount() public {
        NodeSet.Node[] memory list = nodes(3);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadThreshold.selector, uint32(4), uint256(3)));
        vm.prank(admin);
        nodeSet.setNodes(list, 4);
    }

    function test_setNodes_revertsOnEmptyList() public {
        NodeSet.Node[] memory list = nodes(0);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadThreshold.selector, uint32(1), uint256(0)));
        vm.prank(admin);
        nodeSet.setNodes(list, 1);
        assertEq(nodeSet.epoch(), 0);
    }

    // ---- setNodes: node signers and ids ----

    function test_setNodes_revertsOnZeroSigner() public {
        for (uint256 i = 0; i < 3; i++) {
            NodeSet.Node[] memory list = nodes(3);
            list[i].signer = address(0);
            vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, i));
            vm.prank(admin);
            nodeSet.setNodes(list, 2);
        }
        assertEq(nodeSet.epoch(), 0);
    }

    function test_setNodes_revertsOnDuplicateSigner() public {
        NodeSet.Node[] memory list = nodes(4);
        list[3].signer = list[1].signer;
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, uint256(3)));
        vm.prank(admin);
        nodeSet.setNodes(list, 3);

        list = nodes(4);
        list[1].signer = list[0].signer;
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, uint256(1)));
        vm.prank(admin);
        nodeSet.setNodes(list, 3);
        assertEq(nodeSet.epoch(), 0);
    }

    function test_setNodes_revertsOnDuplicateId() public {
        NodeSet.Node[] memory list = nodes(4);
        list[2].id = list[0].id;
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, uint256(2)));
        vm.prank(admin);
        nodeSet.setNodes(list, 3);
        assertEq(nodeSet.epoch(), 0);
    }

    /// @dev A refused list leaves the previous epoch, list and signers in place.
    function test_setNodes_refusedListKeepsThePreviousOne() public {
        vm.prank(admin);
        nodeSet.setNodes(nodes(3), 2);
        NodeSet.Node[] memory list = nodes(3);
        list[2].signer = list[0].signer;
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, uint256(2)));
        vm.prank(admin);
        nodeSet.setNodes(list, 2);
        assertEq(nodeSet.epoch(), 1);
        assertEq(nodeSet.getNodes()[2].signer, vm.addr(NODE_KEY_BASE + 2));
        _record(ATTESTER, _signedBy(_range(1, 3), _digest(ATTESTER)));
        assertEq(nodeSet.attester(), ATTESTER);
    }

    /// @dev The same signers and ids may appear again in a later epoch.
    function test_setNodes_sameNodesInANewEpoch() public {
        vm.startPrank(admin);
        nodeSet.setNodes(nodes(3), 2);
        nodeSet.setNodes(nodes(3), 2);
        vm.stopPrank();
        assertEq(nodeSet.epoch(), 2);
    }

    function test_setNodes_refusesMoreThan256Nodes() public {
        NodeSet.Node[] memory list = nodes(257);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.TooManyNodes.selector, uint256(257)));
        vm.prank(admin);
        nodeSet.setNodes(list, 172);
        assertEq(nodeSet.epoch(), 0);
    }

    /// @dev 256 nodes are accepted, and the node at the last position (the top bit of the
    ///      counted-nodes word) is counted once like any other.
    function test_recordKeys_with256Nodes() public {
        vm.prank(admin);
        nodeSet.setNodes(nodes(256), 171);
        bytes32 digest = _digest(ATTESTER);
        uint256[] memory signers = _range(86, 256); // positions 85..255: 171 nodes
        bytes[] memory sigs = _signedBy(signers, digest);

        // the last node twice: the second is refused
        bytes[] memory twice = new bytes[](172);
        for (uint256 i = 0; i < 171; i++) {
            twice[i] = sigs[i];
        }
        twice[171] = sigs[170];
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadKeySignature.selector, uint256(171)));
        nodeSet.recordKeys(ECDSA_KEY, BLS_KEY, BLS_SHARES, ATTESTER, twice);

        _record(ATTESTER, sigs);
        assertEq(nodeSet.attester(), ATTESTER);
    }

    // ---- root keys ----

    /// @dev Node signing keys NODE_KEY_BASE + i - 1 for i in [from, to]: nodes at positions
    ///      from - 1 .. to - 1.
    function _range(uint256 from, uint256 to) internal pure returns (uint256[] memory list) {
        list = new uint256[](to - from + 1);
        for (uint256 i = 0; i < list.length; i++) {
            list[i] = NODE_KEY_BASE + from - 1 + i;
        }
    }

    function _keys(uint256 a, uint256 b) internal pure returns (uint256[] memory list) {
        list = new uint256[](2);
        list[0] = a;
        list[1] = b;
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _signedBy(uint256[] memory keys, bytes32 digest) internal pure returns (bytes[] memory sigs) {
        sigs = new bytes[](keys.length);
        for (uint256 i = 0; i < keys.length; i++) {
            sigs[i] = _sign(keys[i], digest);
        }
    }

    /// @dev The digest of the test keys with `attester_` for the current epoch.
    function _digest(address attester_) internal view returns (bytes32) {
        return nodeSet.rootKeysDigest(nodeSet.epoch(), ECDSA_KEY, BLS_KEY, BLS_SHARES, attester_);
    }

    function _record(address attester_, bytes[] memory sigs) internal {
        nodeSet.recordKeys(ECDSA_KEY, BLS_KEY, BLS_SHARES, attester_, sigs);
    }

    function _expectBadKeySignature(uint256 index, bytes[] memory sigs) internal {
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadKeySignature.selector, index));
        _record(ATTESTER, sigs);
    }

    function _assertEmpty(NodeSet.RootKeys memory keys) internal pure {
        assertEq(keys.ecdsaKey, "");
        assertEq(keys.blsKey, "");
        assertEq(keys.blsShares, bytes32(0));
        assertEq(keys.attester, address(0));
    }

    function _assertTestKeys(NodeSet.RootKeys memory keys, address attester_) internal pure {
        assertEq(keys.ecdsaKey, ECDSA_KEY);
        assertEq(keys.blsKey, BLS_KEY);
        assertEq(keys.blsShares, BLS_SHARES);
        assertEq(keys.attester, attester_);
    }

    /// @dev Three nodes, threshold 2, epoch 1.
    function _threeNodes() internal {
        vm.prank(admin);
        nodeSet.setNodes(nodes(3), 2);
    }

    function test_rootKeys_emptyBeforeAnyRecord() public {
        _assertEmpty(nodeSet.rootKeys());
        _assertEmpty(nodeSet.rootKeysOf(0));
        _threeNodes();
        _assertEmpty(nodeSet.rootKeys());
        _assertEmpty(nodeSet.rootKeysOf(1));
        assertEq(nodeSet.keysEpoch(), 0);
        assertEq(nodeSet.attester(), address(0));
    }

    /// Pins the root-key digest layout: 18-byte tag, 32-byte chain id, 20-byte contract address,
    /// 32-byte epoch, three 32-byte words, 20-byte attester (218 bytes in all).
    function test_rootKeysDigest_format() public {
        vm.chainId(424242);
        bytes memory preimage = abi.encodePacked(
            bytes("sigil-root-keys-v1"),
            uint256(424242),
            address(nodeSet),
            uint256(7),
            keccak256(ECDSA_KEY),
            keccak256(BLS_KEY),
            BLS_SHARES,
            ATTESTER
        );
        assertEq(preimage.length, 218);
        bytes memory byHand = bytes.concat(
            "sigil-root-keys-v1",
            bytes32(uint256(424242)),
            bytes20(address(nodeSet)),
            bytes32(uint256(7)),
            keccak256(ECDSA_KEY),
            keccak256(BLS_KEY),
            BLS_SHARES,
            bytes20(ATTESTER)
        );
        assertEq(preimage, byHand);
        assertEq(nodeSet.rootKeysDigest(7, ECDSA_KEY, BLS_KEY, BLS_SHARES, ATTESTER), keccak256(preimage));
    }

    /// Fixed vector, shared with the nodes: chain 31337, NodeSet at
    /// 0x5FbDB2315678afecb367f032d93F642f64180aa3, epoch 1, the test keys (BLS_SHARES =
    /// keccak256("bls shares")), attester 0x83Ae…1f3C; signed by node key 0x1001.
    /// @dev The preimage and digest `sigil_chain::vouch` checks `confirmation_digest` against.
    function test_confirmationDigest_vector() public {
        address at = 0x5FbDB2315678afecb367f032d93F642f64180aa3;
        bytes32 digest = 0xd66f9275e771309974e6d7cd6762c1702e6393d2c9d4efb198c414b2897a9daa;
        bytes memory preimage = hex"736967696c2d65706f63682d636f6e6669726d6174696f6e2d7631"
            hex"0000000000000000000000000000000000000000000000000000000000007a69"
            hex"5fbdb2315678afecb367f032d93f642f64180aa3"
            hex"0000000000000000000000000000000000000000000000000000000000000002"
            hex"0000000000000000000000000000000000000000000000000000000000000007"
            hex"aa61b794ba668ff67c7b8d037034adcca06964c0dffdb3eae70e8666faa5a63d"
            hex"6ba4c1ecb5f18e31856de71ad4840e3dd098bcbf589b7b67f238606bc0ac0412"
            hex"37fbe4ba720b3f13e6d31983199f869d9512d7a843819dfd7cfc031059d9014d"
            hex"83ae882be86b8ab6c4eb270ee2b0c0383ec41f3c";
        assertEq(keccak256(preimage), digest);
        vm.chainId(31337);
        vm.etch(at, address(nodeSet).code);
        assertEq(NodeSet(at).confirmationDigest(2, 7, ECDSA_KEY, BLS_KEY, BLS_SHARES, ATTESTER), digest);
    }

    function test_rootKeysDigest_vector() public {
        address at = 0x5FbDB2315678afecb367f032d93F642f64180aa3;
        bytes32 digest = 0x18bc47230d8fa36c2c3a289a99ef5baef68ebb462d670ef0fc6d38b0750db77d;
        bytes memory preimage = hex"736967696c2d726f6f742d6b6579732d7631"
            hex"0000000000000000000000000000000000000000000000000000000000007a69"
            hex"5fbdb2315678afecb367f032d93f642f64180aa3"
            hex"0000000000000000000000000000000000000000000000000000000000000001"
            hex"aa61b794ba668ff67c7b8d037034adcca06964c0dffdb3eae70e8666faa5a63d"
            hex"6ba4c1ecb5f18e31856de71ad4840e3dd098bcbf589b7b67f238606bc0ac0412"
            hex"37fbe4ba720b3f13e6d31983199f869d9512d7a843819dfd7cfc031059d9014d"
            hex"83ae882be86b8ab6c4eb270ee2b0c0383ec41f3c";
        assertEq(keccak256(preimage), digest);

        vm.chainId(31337);
        vm.etch(at, address(nodeSet).code);
        assertEq(NodeSet(at).rootKeysDigest(1, ECDSA_KEY, BLS_KEY, BLS_SHARES, ATTESTER), digest);

        // RFC 6979 signature of the digest by node key 0x1001.
        assertEq(vm.addr(NODE_KEY_BASE), 0x123ABAF7a75FE084F7F5Bf8dd7e3e6D9E6027B3b);
        assertEq(
            _sign(NODE_KEY_BASE, digest),
            hex"8faa5833e7c2729cae4bfa050f6ebb2a1efab2cba5babd69dd322a49726aa895"
            hex"6e53d904a155d6dc875fc08d5612261328e8756aace3ba1cdd688b83d75cf85b" hex"1b"
        );
    }

    function test_recordKeys_withThresholdSignaturesRecordsAndEmits() public {
        _threeNodes();
        bytes[] memory sigs = _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 2), _digest(ATTESTER));
        vm.expectEmit(address(nodeSet));
        emit NodeSet.KeysRecorded(1, ATTESTER);
        // anyone may submit: the signatures authorize the record
        vm.prank(stranger);
        _record(ATTESTER, sigs);

        assertEq(nodeSet.attester(), ATTESTER);
        assertEq(nodeSet.keysEpoch(), 1);
        _assertTestKeys(nodeSet.rootKeys(), ATTESTER);
        _assertTestKeys(nodeSet.rootKeysOf(1), ATTESTER);
        _assertEmpty(nodeSet.rootKeysOf(0));
        _assertEmpty(nodeSet.rootKeysOf(2));
        // recording keys does not start an epoch
        assertEq(nodeSet.epoch(), 1);
    }

    function test_recordKeys_acceptsMoreThanThresholdAndRecoveryIdZeroOrOne() public {
        _threeNodes();
        bytes32 digest = _digest(ATTESTER);
        bytes[] memory sigs = new bytes[](3);
        for (uint256 i = 0; i < 3; i++) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(NODE_KEY_BASE + i, digest);
            sigs[i] = abi.encodePacked(r, s, v - 27);
        }
        _record(ATTESTER, sigs);
        assertEq(nodeSet.attester(), ATTESTER);
    }

    function test_recordKeys_revertsBelowThreshold() public {
        vm.prank(admin);
        nodeSet.setNodes(nodes(4), 3);
        bytes[] memory sigs = _signedBy(_keys(NODE_KEY_BASE + 3, NODE_KEY_BASE + 1), _digest(ATTESTER));
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotEnoughSignatures.selector, uint256(2), uint32(3)));
        _record(ATTESTER, sigs);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotEnoughSignatures.selector, uint256(0), uint32(3)));
        _record(ATTESTER, new bytes[](0));
        assertEq(nodeSet.attester(), address(0));
        assertEq(nodeSet.keysEpoch(), 0);
    }

    function test_recordKeys_revertsOnTheSameNodeTwice() public {
        // t = 2 entries, the second a copy of the first
        _threeNodes();
        bytes32 digest = _digest(ATTESTER);
        bytes[] memory sigs = _signedBy(_keys(NODE_KEY_BASE + 1, NODE_KEY_BASE + 1), digest);
        _expectBadKeySignature(1, sigs);

        // the same node's signature in its other encoding (v as 0/1) is still the same node
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(NODE_KEY_BASE + 1, digest);
        sigs[1] = abi.encodePacked(r, s, v - 27);
        _expectBadKeySignature(1, sigs);

        // t = 3 entries, the third repeats the first
        vm.prank(admin);
        nodeSet.setNodes(nodes(4), 3);
        digest = _digest(ATTESTER);
        sigs = new bytes[](3);
        sigs[0] = _sign(NODE_KEY_BASE, digest);
        sigs[1] = _sign(NODE_KEY_BASE + 1, digest);
        sigs[2] = sigs[0];
        _expectBadKeySignature(2, sigs);
        assertEq(nodeSet.attester(), address(0));
    }

    function test_recordKeys_revertsOnAKeyNotInTheList() public {
        _threeNodes();
        bytes32 digest = _digest(ATTESTER);
        // the admin's own key
        _expectBadKeySignature(1, _signedBy(_keys(NODE_KEY_BASE, ADMIN_KEY), digest));
        // the key of a node the list does not hold (position 3 of `nodes(4)`)
        _expectBadKeySignature(0, _signedBy(_keys(NODE_KEY_BASE + 3, NODE_KEY_BASE), digest));
        // the attester's own key cannot vouch for itself
        assertEq(vm.addr(0xa77e5), ATTESTER);
        _expectBadKeySignature(0, _signedBy(_keys(0xa77e5, NODE_KEY_BASE), digest));
        assertEq(nodeSet.attester(), address(0));
    }

    function test_recordKeys_revertsOnARemovedNode() public {
        _threeNodes();
        // epoch 2: node 3 removed, and node 2 given a new signing key
        NodeSet.Node[] memory list = nodes(2);
        list[1].signer = vm.addr(0x2002);
        vm.prank(admin);
        nodeSet.setNodes(list, 2);
        bytes32 digest = _digest(ATTESTER);
        _expectBadKeySignature(1, _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 2), digest));
        _expectBadKeySignature(1, _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), digest));
        _record(ATTESTER, _signedBy(_keys(NODE_KEY_BASE, 0x2002), digest));
        assertEq(nodeSet.keysEpoch(), 2);
    }

    function test_recordKeys_revertsOnAnotherEpochsDigest() public {
        _threeNodes();
        bytes32 epoch1 = _digest(ATTESTER);
        bytes32 epoch2 = nodeSet.rootKeysDigest(2, ECDSA_KEY, BLS_KEY, BLS_SHARES, ATTESTER);
        uint256[] memory both = _keys(NODE_KEY_BASE, NODE_KEY_BASE + 1);
        // signed ahead for the next epoch
        _expectBadKeySignature(0, _signedBy(both, epoch2));

        // signed for epoch 1, replayed in epoch 2 by the same nodes
        vm.prank(admin);
        nodeSet.setNodes(nodes(3), 2);
        _expectBadKeySignature(0, _signedBy(both, epoch1));
        _record(ATTESTER, _signedBy(both, epoch2));
        assertEq(nodeSet.keysEpoch(), 2);
        _assertEmpty(nodeSet.rootKeysOf(1));
    }

    function test_recordKeys_revertsOnAnotherChainsDigest() public {
        _threeNodes();
        uint256 chain = block.chainid;
        vm.chainId(chain + 1);
        bytes[] memory sigs = _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), _digest(ATTESTER));
        vm.chainId(chain);
        _expectBadKeySignature(0, sigs);
        // they are valid on the chain they were made for
        vm.chainId(chain + 1);
        _record(ATTESTER, sigs);
        assertEq(nodeSet.attester(), ATTESTER);
    }

    function test_recordKeys_revertsOnAnotherContractsDigest() public {
        _threeNodes();
        NodeSet other = new NodeSet(admin);
        vm.prank(admin);
        other.setNodes(nodes(3), 2);
        bytes32 digest = other.rootKeysDigest(1, ECDSA_KEY, BLS_KEY, BLS_SHARES, ATTESTER);
        bytes[] memory sigs = _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), digest);
        _expectBadKeySignature(0, sigs);
        // ...but they are valid on the contract they were made for
        other.recordKeys(ECDSA_KEY, BLS_KEY, BLS_SHARES, ATTESTER, sigs);
        assertEq(other.attester(), ATTESTER);
        assertEq(nodeSet.attester(), address(0));
    }

    function test_recordKeys_revertsOnAChangedField() public {
        _threeNodes();
        bytes[] memory sigs = _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), _digest(ATTESTER));
        bytes memory otherEcdsa = bytes.concat(ECDSA_KEY);
        otherEcdsa[0] = 0x03;
        bytes memory otherBls = bytes.concat(BLS_KEY);
        otherBls[47] = 0x00;
        bytes memory err = abi.encodeWithSelector(NodeSet.BadKeySignature.selector, uint256(0));

        vm.expectRevert(err);
        nodeSet.recordKeys(otherEcdsa, BLS_KEY, BLS_SHARES, ATTESTER, sigs);
        vm.expectRevert(err);
        nodeSet.recordKeys(ECDSA_KEY, otherBls, BLS_SHARES, ATTESTER, sigs);
        vm.expectRevert(err);
        nodeSet.recordKeys(ECDSA_KEY, BLS_KEY, keccak256("other shares"), ATTESTER, sigs);
        vm.expectRevert(err);
        nodeSet.recordKeys(ECDSA_KEY, BLS_KEY, BLS_SHARES, stranger, sigs);
        assertEq(nodeSet.attester(), address(0));
        // unchanged, they pass
        _record(ATTESTER, sigs);
        assertEq(nodeSet.attester(), ATTESTER);
    }

    /// @dev Of the two s values that verify (s and n − s), only the low one is accepted.
    function test_recordKeys_revertsOnHighS() public {
        _threeNodes();
        bytes32 digest = _digest(ATTESTER);
        bytes[] memory sigs = _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), digest);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(NODE_KEY_BASE + 1, digest);
        bytes memory twin = highSTwin(v, r, s);
        // ecrecover itself accepts the twin
        (bytes32 tr, bytes32 ts) = (r, bytes32(SECP256K1_N - uint256(s)));
        assertEq(ecrecover(digest, v == 27 ? 28 : 27, tr, ts), vm.addr(NODE_KEY_BASE + 1));
        sigs[1] = twin;
        _expectBadKeySignature(1, sigs);
        assertEq(nodeSet.attester(), address(0));
    }

    function test_recordKeys_revertsOnAMalformedSignature() public {
        _threeNodes();
        bytes32 digest = _digest(ATTESTER);
        bytes memory good = _sign(NODE_KEY_BASE + 1, digest);
        bytes memory short = new bytes(64);
        bytes memory badV = bytes.concat(good);
        badV[64] = bytes1(uint8(29));
        bytes[5] memory bad =
            [bytes(""), short, bytes.concat(good, hex"00"), badV, abi.encodePacked(bytes32(0), bytes32(0), uint8(27))];
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = _sign(NODE_KEY_BASE, digest);
        for (uint256 i = 0; i < bad.length; i++) {
            sigs[1] = bad[i];
            _expectBadKeySignature(1, sigs);
        }
    }

    function test_recordKeys_revertsOnMalformedKeys() public {
        _threeNodes();
        bytes memory ecdsaPrefix04 = bytes.concat(ECDSA_KEY);
        ecdsaPrefix04[0] = 0x04;
        bytes memory ecdsaPrefix00 = bytes.concat(ECDSA_KEY);
        ecdsaPrefix00[0] = 0x00;
        bytes[6] memory badEcdsa = [
            bytes(""),
            abi.encodePacked(bytes32(uint256(2))), // 32 bytes
            bytes.concat(ECDSA_KEY, hex"00"), // 34 bytes
            abi.encodePacked(bytes1(0x04), bytes32(uint256(1)), bytes32(uint256(2))), // uncompressed
            ecdsaPrefix04,
            ecdsaPrefix00
        ];
        bytes[4] memory badBls = [
            bytes(""),
            abi.encodePacked(bytes32(uint256(1)), bytes15(0)), // 47 bytes
            bytes.concat(BLS_KEY, hex"00"), // 49 bytes
            bytes.concat(BLS_KEY, BLS_KEY) // 96 bytes, uncompressed size
        ];
        uint256[] memory both = _keys(NODE_KEY_BASE, NODE_KEY_BASE + 1);
        uint64 e = nodeSet.epoch();
        // each attempt carries valid signatures over exactly what it submits
        for (uint256 i = 0; i < badEcdsa.length; i++) {
            bytes[] memory sigs = _signedBy(both, nodeSet.rootKeysDigest(e, badEcdsa[i], BLS_KEY, BLS_SHARES, ATTESTER));
            vm.expectRevert(NodeSet.BadKeys.selector);
            nodeSet.recordKeys(badEcdsa[i], BLS_KEY, BLS_SHARES, ATTESTER, sigs);
        }
        for (uint256 i = 0; i < badBls.length; i++) {
            bytes[] memory sigs = _signedBy(both, nodeSet.rootKeysDigest(e, ECDSA_KEY, badBls[i], BLS_SHARES, ATTESTER));
            vm.expectRevert(NodeSet.BadKeys.selector);
            nodeSet.recordKeys(ECDSA_KEY, badBls[i], BLS_SHARES, ATTESTER, sigs);
        }
        bytes[] memory zeroSigs = _signedBy(both, _digest(address(0)));
        vm.expectRevert(NodeSet.BadKeys.selector);
        _record(address(0), zeroSigs);
        assertEq(nodeSet.keysEpoch(), 0);

        // a 0x03 prefix is as good as 0x02
        bytes memory odd = bytes.concat(ECDSA_KEY);
        odd[0] = 0x03;
        nodeSet.recordKeys(
            odd,
            BLS_KEY,
            BLS_SHARES,
            ATTESTER,
            _signedBy(both, nodeSet.rootKeysDigest(e, odd, BLS_KEY, BLS_SHARES, ATTESTER))
        );
        assertEq(nodeSet.rootKeys().ecdsaKey, odd);
    }

    function test_recordKeys_revertsWhenAlreadyRecorded() public {
        _threeNodes();
        uint256[] memory both = _keys(NODE_KEY_BASE, NODE_KEY_BASE + 1);
        _record(ATTESTER, _signedBy(both, _digest(ATTESTER)));
        // a second, properly signed record for the same epoch
        bytes[] memory sigs = _signedBy(both, _digest(stranger));
        vm.expectRevert(abi.encodeWithSelector(NodeSet.KeysAlreadyRecorded.selector, uint64(1)));
        _record(stranger, sigs);
        // the same record again
        sigs = _signedBy(both, _digest(ATTESTER));
        vm.expectRevert(abi.encodeWithSelector(NodeSet.KeysAlreadyRecorded.selector, uint64(1)));
        _record(ATTESTER, sigs);
        assertEq(nodeSet.attester(), ATTESTER);
        _assertTestKeys(nodeSet.rootKeys(), ATTESTER);
    }

    function test_recordKeys_newEpochTakesANewRecordAndKeepsTheOld() public {
        _threeNodes();
        _record(ATTESTER, _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), _digest(ATTESTER)));

        // epoch 2: four nodes, threshold 3; until its record, the old one stands
        vm.prank(admin);
        nodeSet.setNodes(nodes(4), 3);
        assertEq(nodeSet.attester(), ATTESTER);
        assertEq(nodeSet.keysEpoch(), 1);
        _assertTestKeys(nodeSet.rootKeys(), ATTESTER);
        _assertEmpty(nodeSet.rootKeysOf(2));

        // the same keys with the new nodes' shares
        bytes32 shares = keccak256("epoch 2 shares");
        bytes32 digest = nodeSet.rootKeysDigest(2, ECDSA_KEY, BLS_KEY, shares, ATTESTER);
        bytes[] memory sigs = _signedBy(_range(2, 4), digest);
        vm.expectEmit(address(nodeSet));
        emit NodeSet.KeysRecorded(2, ATTESTER);
        nodeSet.recordKeys(ECDSA_KEY, BLS_KEY, shares, ATTESTER, sigs);

        assertEq(nodeSet.attester(), ATTESTER);
        assertEq(nodeSet.keysEpoch(), 2);
        assertEq(nodeSet.rootKeys().blsShares, shares);
        assertEq(nodeSet.rootKeysOf(2).blsShares, shares);
        _assertTestKeys(nodeSet.rootKeysOf(1), ATTESTER);
    }

    /// @dev An admin that lists nodes whose keys it holds, in a new epoch, signs a record of its
    ///      own keys or attester with `threshold` valid signatures: refused, the first record stands.
    function test_recordKeys_anAdminListingItsOwnNodesCannotChangeTheKeys() public {
        _threeNodes();
        _record(ATTESTER, _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), _digest(ATTESTER)));
        vm.prank(admin);
        nodeSet.setNodes(nodes(4), 3);
        address evil = address(0xE711);
        bytes memory otherBls = abi.encodePacked(bytes16(0), bytes32(keccak256("admin's bls key")));
        bytes memory otherEcdsa = abi.encodePacked(bytes1(0x02), keccak256("admin's ecdsa key"));
        bytes[3] memory ecdsas = [ECDSA_KEY, ECDSA_KEY, otherEcdsa];
        bytes[3] memory blss = [BLS_KEY, otherBls, BLS_KEY];
        address[3] memory attesters = [evil, ATTESTER, ATTESTER];
        for (uint256 i = 0; i < 3; i++) {
            bytes32 digest = nodeSet.rootKeysDigest(2, ecdsas[i], blss[i], BLS_SHARES, attesters[i]);
            bytes[] memory sigs = _signedBy(_range(2, 4), digest);
            vm.expectRevert(NodeSet.KeysChanged.selector);
            nodeSet.recordKeys(ecdsas[i], blss[i], BLS_SHARES, attesters[i], sigs);
        }
        assertEq(nodeSet.attester(), ATTESTER);
        assertEq(nodeSet.keysEpoch(), 1);
        _assertTestKeys(nodeSet.rootKeys(), ATTESTER);
    }

    function test_recordKeys_revertsWithoutNodes() public {
        bytes32 digest = nodeSet.rootKeysDigest(0, ECDSA_KEY, BLS_KEY, BLS_SHARES, ATTESTER);
        bytes[] memory sigs = _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), digest);
        vm.expectRevert(NodeSet.NoNodes.selector);
        _record(ATTESTER, sigs);
        vm.expectRevert(NodeSet.NoNodes.selector);
        _record(ATTESTER, new bytes[](0));
        assertEq(nodeSet.attester(), address(0));
    }

    // ---- epochs by proposal: proposeEpoch, confirmEpoch, cancelProposal ----

    /// @dev Three nodes (ids 1–3, threshold 2) whose test keys are recorded: epoch 1.
    function _recordedThree() internal {
        _threeNodes();
        _record(ATTESTER, _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), _digest(ATTESTER)));
    }

    /// @dev Nodes `from`..`to` of `nodes(to)` (1-based, as `_range`).
    function _slice(uint256 from, uint256 to) internal pure returns (NodeSet.Node[] memory list) {
        NodeSet.Node[] memory all = nodes(to);
        list = new NodeSet.Node[](to - from + 1);
        for (uint256 i = 0; i < list.length; i++) {
            list[i] = all[from - 1 + i];
        }
    }

    /// @dev The pending proposal's confirmation digest of the test keys with the new nodes' `shares`.
    function _nextDigest(bytes32 shares) internal view returns (bytes32) {
        (uint64 next,,, uint64 id) = nodeSet.proposal();
        return nodeSet.confirmationDigest(next, id, ECDSA_KEY, BLS_KEY, shares, ATTESTER);
    }

    function _confirm(bytes32 shares, bytes[] memory sigs) internal {
        nodeSet.confirmEpoch(ECDSA_KEY, BLS_KEY, shares, ATTESTER, sigs);
    }

    function test_proposeEpoch_thenConfirm_advancesWithTheSameKeys() public {
        _recordedThree();
        vm.expectEmit(address(nodeSet));
        emit NodeSet.EpochProposed(2, 4, 5);
        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(5), 4);

        // until the new nodes confirm, epoch 1 stands
        (uint64 next, uint32 t, NodeSet.Node[] memory proposed, uint64 id) = nodeSet.proposal();
        assertTrue(id != 0);
        assertEq(next, 2);
        assertEq(t, 4);
        assertEq(proposed.length, 5);
        assertEq(proposed[4].id, 5);
        assertEq(nodeSet.epoch(), 1);
        assertEq(nodeSet.threshold(), 2);
        assertEq(nodeSet.nodeCount(), 3);

        // all five, the two joining nodes among them, with their new BLS shares
        bytes32 shares = keccak256("epoch 2 shares");
        bytes[] memory sigs = _signedBy(_range(1, 5), _nextDigest(shares));
        vm.expectEmit(address(nodeSet));
        emit NodeSet.NodesSet(2, 4, 5);
        vm.expectEmit(address(nodeSet));
        emit NodeSet.KeysRecorded(2, ATTESTER);
        vm.expectEmit(address(nodeSet));
        emit NodeSet.EpochAdvanced(2, 4, 5);
        vm.prank(stranger);
        _confirm(shares, sigs);

        assertEq(nodeSet.epoch(), 2);
        assertEq(nodeSet.threshold(), 4);
        assertEq(nodeSet.nodeCount(), 5);
        assertEq(nodeSet.getNodes()[3].signer, vm.addr(NODE_KEY_BASE + 3));
        assertEq(nodeSet.keysEpoch(), 2);
        assertEq(nodeSet.attester(), ATTESTER);
        assertEq(nodeSet.rootKeysOf(2).blsShares, shares);
        _assertTestKeys(nodeSet.rootKeysOf(1), ATTESTER);
        (next, t, proposed, id) = nodeSet.proposal();
        assertEq(id, 0);
        assertEq(next, 0);
        assertEq(t, 0);
        assertEq(proposed.length, 0);
        // the confirmation was the epoch's record
        bytes[] memory again = _signedBy(_range(1, 4), _digest(ATTESTER));
        vm.expectRevert(abi.encodeWithSelector(NodeSet.KeysAlreadyRecorded.selector, uint64(2)));
        _record(ATTESTER, again);

        // and the next change is proposed the same way: three leave, node 1 among them
        vm.prank(admin);
        nodeSet.proposeEpoch(_slice(3, 5), 2);
        bytes32 shares3 = keccak256("epoch 3 shares");
        // a node that leaves cannot count towards the new set
        bytes[] memory withLeaver = _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 2), _nextDigest(shares3));
        bytes[] memory stayers = _signedBy(_range(3, 5), _nextDigest(shares3));
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadKeySignature.selector, uint256(0)));
        _confirm(shares3, withLeaver);
        _confirm(shares3, stayers);
        assertEq(nodeSet.epoch(), 3);
        assertEq(nodeSet.nodeCount(), 3);
        assertEq(nodeSet.getNodes()[0].id, 3);
    }

    function test_proposeEpoch_onlyTheAdminAfterTheKeysOneAtATime() public {
        _threeNodes();
        vm.expectRevert(abi.encodeWithSelector(NodeSet.KeysNotRecorded.selector, uint64(1)));
        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(4), 3);
        _record(ATTESTER, _signedBy(_keys(NODE_KEY_BASE, NODE_KEY_BASE + 1), _digest(ATTESTER)));

        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.proposeEpoch(nodes(4), 3);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadThreshold.selector, uint32(2), uint256(4)));
        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(4), 2);

        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(4), 3);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.ProposalPending.selector, uint64(2)));
        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(5), 4);
    }

    /// @dev Ids are the nodes' own: a proposal cannot give a listed id to another signer, not even
    ///      the id of a node that left epochs ago.
    function test_proposeEpoch_refusesAnIdListedBeforeWithAnotherSigner() public {
        _recordedThree();
        NodeSet.Node[] memory list = nodes(4);
        list[3].id = 2; // the new node takes node 2's id, node 2 moves to id 9
        list[1].id = 9;
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, uint256(1)));
        vm.prank(admin);
        nodeSet.proposeEpoch(list, 3);
        list[1].id = 2; // node 2 keeps its id: now the new node is the culprit
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, uint256(3)));
        vm.prank(admin);
        nodeSet.proposeEpoch(list, 3);

        // node 1 leaves; a stranger later listed under id 1 is refused
        vm.prank(admin);
        nodeSet.proposeEpoch(_slice(2, 4), 2);
        bytes32 shares = keccak256("without node 1");
        bytes[] memory sigs = _signedBy(_range(2, 4), _nextDigest(shares));
        _confirm(shares, sigs);
        NodeSet.Node[] memory back = _slice(2, 5);
        back[3].id = 1;
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, uint256(3)));
        vm.prank(admin);
        nodeSet.proposeEpoch(back, 3);
        // node 1 itself may come back under its id
        NodeSet.Node[] memory returning = nodes(4);
        vm.prank(admin);
        nodeSet.proposeEpoch(returning, 3);
    }

    /// @dev A withdrawn proposal binds no id: a mistyped signer does not take an id for good.
    function test_cancelProposal_leavesItsIdsFree() public {
        _recordedThree();
        NodeSet.Node[] memory typo = nodes(4);
        typo[3].signer = address(0x7790);
        vm.prank(admin);
        nodeSet.proposeEpoch(typo, 3);
        vm.prank(admin);
        nodeSet.cancelProposal();
        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(4), 3);
        (, uint32 t, NodeSet.Node[] memory proposed,) = nodeSet.proposal();
        assertEq(t, 3);
        assertEq(proposed[3].signer, vm.addr(NODE_KEY_BASE + 3));
    }

    function test_confirmEpoch_refusesTooFewOtherKeysOtherEpochsAndNoProposal() public {
        _recordedThree();
        bytes32 shares = keccak256("epoch 2 shares");
        bytes[] memory sigs = _signedBy(_range(1, 3), _nextDigest(shares));
        vm.expectRevert(NodeSet.NoProposal.selector);
        _confirm(shares, sigs);

        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(5), 4);
        // t_new = 4 of the 5 new nodes: every one must confirm
        sigs = _signedBy(_range(2, 5), _nextDigest(shares));
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotEnoughSignatures.selector, uint256(4), uint32(5)));
        _confirm(shares, sigs);
        // what the new nodes signed for something else is not a confirmation: the current epoch's
        // record (epoch 1), a root-key record of epoch 2 (another tag), or another proposal's id
        (,,, uint64 id) = nodeSet.proposal();
        bytes32[3] memory others = [
            nodeSet.rootKeysDigest(1, ECDSA_KEY, BLS_KEY, shares, ATTESTER),
            nodeSet.rootKeysDigest(2, ECDSA_KEY, BLS_KEY, shares, ATTESTER),
            nodeSet.confirmationDigest(2, id + 1, ECDSA_KEY, BLS_KEY, shares, ATTESTER)
        ];
        for (uint256 i = 0; i < 3; i++) {
            bytes[] memory elsewhere = _signedBy(_range(2, 5), others[i]);
            vm.expectRevert(abi.encodeWithSelector(NodeSet.BadKeySignature.selector, uint256(0)));
            _confirm(shares, elsewhere);
        }
        // other keys or another attester, with every valid signature over them: refused
        bytes memory otherEcdsa = abi.encodePacked(bytes1(0x02), keccak256("another ecdsa key"));
        sigs = _signedBy(_range(1, 5), nodeSet.confirmationDigest(2, id, otherEcdsa, BLS_KEY, shares, ATTESTER));
        vm.expectRevert(NodeSet.KeysChanged.selector);
        nodeSet.confirmEpoch(otherEcdsa, BLS_KEY, shares, ATTESTER, sigs);
        address evil = address(0xE711);
        sigs = _signedBy(_range(1, 5), nodeSet.confirmationDigest(2, id, ECDSA_KEY, BLS_KEY, shares, evil));
        vm.expectRevert(NodeSet.KeysChanged.selector);
        nodeSet.confirmEpoch(ECDSA_KEY, BLS_KEY, shares, evil, sigs);
        assertEq(nodeSet.epoch(), 1);
        assertEq(nodeSet.nodeCount(), 3);
    }

    /// @dev Confirmations are for one proposal: the public signatures of a withdrawn proposal do
    ///      not confirm the next one, not even for the same list, and a proposal's signatures do
    ///      not record the keys of an epoch `setNodes` starts under the same number.
    function test_confirmEpoch_countsOnlyConfirmationsOfThisProposal() public {
        _recordedThree();
        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(4), 3);
        bytes32 shares = keccak256("shares of the withdrawn reshare");
        bytes[] memory withdrawn = _signedBy(_range(1, 3), _nextDigest(shares));
        vm.prank(admin);
        nodeSet.cancelProposal();
        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(4), 3);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadKeySignature.selector, uint256(0)));
        _confirm(shares, withdrawn);
        // one honest signature of the withdrawn proposal plus two of this one: still short
        bytes[] memory current = _signedBy(_range(2, 3), _nextDigest(shares));
        bytes[] memory mixed = new bytes[](3);
        mixed[0] = withdrawn[0];
        mixed[1] = current[0];
        mixed[2] = current[1];
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadKeySignature.selector, uint256(0)));
        _confirm(shares, mixed);
        // a reset to epoch 2 with the same nodes: the proposal's signatures record nothing
        vm.prank(admin);
        nodeSet.setNodes(nodes(4), 3);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadKeySignature.selector, uint256(0)));
        nodeSet.recordKeys(ECDSA_KEY, BLS_KEY, shares, ATTESTER, withdrawn);
        assertEq(nodeSet.keysEpoch(), 1);
    }

    /// @dev Once keys exist, the admin's reset keeps ids with their nodes too: it cannot seat a
    ///      node of its own at a victim's id (and so at the victim's share) or move a node's id.
    function test_setNodes_afterTheKeysKeepsIdsWithTheirNodes() public {
        _recordedThree();
        NodeSet.Node[] memory seated = nodes(3);
        seated[1].signer = vm.addr(0xE7111); // the admin's node at node 2's id
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, uint256(1)));
        vm.prank(admin);
        nodeSet.setNodes(seated, 2);
        NodeSet.Node[] memory moved = nodes(3);
        moved[2].id = 9;
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadNode.selector, uint256(2)));
        vm.prank(admin);
        nodeSet.setNodes(moved, 2);
        // the same nodes, and a new one with a new id, are fine
        vm.prank(admin);
        nodeSet.setNodes(nodes(4), 3);
        assertEq(nodeSet.epoch(), 2);
    }

    /// @dev Before any keys, a list binds nothing: a mistyped signer set at the start does not
    ///      lock the real node out of its id.
    function test_setNodes_beforeTheKeysBindsNoId() public {
        NodeSet.Node[] memory typo = nodes(3);
        typo[2].signer = address(0x7790);
        vm.prank(admin);
        nodeSet.setNodes(typo, 2);
        _recordedThree();
        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(4), 3);
        (uint64 next,,,) = nodeSet.proposal();
        assertEq(next, 3);
    }

    function test_cancelProposal_dropsItAndItsNodesCountForNothing() public {
        _recordedThree();
        vm.expectRevert(NodeSet.NoProposal.selector);
        vm.prank(admin);
        nodeSet.cancelProposal();

        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(5), 4);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.cancelProposal();
        vm.expectEmit(address(nodeSet));
        emit NodeSet.ProposalCancelled(2);
        vm.prank(admin);
        nodeSet.cancelProposal();
        bytes32 shares = keccak256("epoch 2 shares");
        bytes[] memory sigs = _signedBy(_range(2, 5), _nextDigest(shares));
        vm.expectRevert(NodeSet.NoProposal.selector);
        _confirm(shares, sigs);

        // a new proposal without node 5: node 5's signature from the cancelled one is not counted
        vm.prank(admin);
        nodeSet.proposeEpoch(nodes(4), 3);
        sigs = _signedBy(_range(3, 5), _nextDigest(shares));
        vm.expectRevert(abi.encodeWithSelector(NodeSet.BadKeySignature.selector, uint256(2)));
        _confirm(shares, sigs);

        // setNodes, the admin's reset, cancels a pending proposal too
        vm.expectEmit(address(nodeSet));
        emit NodeSet.ProposalCancelled(2);
        vm.prank(admin);
        nodeSet.setNodes(nodes(3), 2);
        (uint64 next,,,) = nodeSet.proposal();
        assertEq(next, 0);
    }

    function test_transferAdmin_onlyRecordsThePendingAdmin() public {
        vm.expectEmit(address(nodeSet));
        emit NodeSet.AdminTransferStarted(admin, stranger);
        vm.prank(admin);
        nodeSet.transferAdmin(stranger);
        assertEq(nodeSet.pendingAdmin(), stranger);
        assertEq(nodeSet.admin(), admin);

        // until the new admin accepts, the old one keeps the role and the new one has none
        NodeSet.Node[] memory list = nodes(3);
        vm.prank(admin);
        nodeSet.setNodes(list, 2);
        assertEq(nodeSet.epoch(), 1);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.setNodes(list, 2);
    }

    function test_acceptAdmin_movesTheRole() public {
        vm.prank(admin);
        nodeSet.transferAdmin(stranger);
        vm.expectEmit(address(nodeSet));
        emit NodeSet.AdminTransferred(admin, stranger);
        vm.prank(stranger);
        nodeSet.acceptAdmin();
        assertEq(nodeSet.admin(), stranger);
        assertEq(nodeSet.pendingAdmin(), address(0));

        NodeSet.Node[] memory list = nodes(3);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, admin));
        vm.prank(admin);
        nodeSet.setNodes(list, 2);

        vm.prank(stranger);
        nodeSet.setNodes(list, 2);
        assertEq(nodeSet.epoch(), 1);

        // accepting is one-shot
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotPendingAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.acceptAdmin();
    }

    function test_acceptAdmin_revertsForAnyoneButThePendingAdmin() public {
        address other = address(0x07E4);
        // nothing pending: nobody can accept, the admin included
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotPendingAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.acceptAdmin();
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotPendingAdmin.selector, admin));
        vm.prank(admin);
        nodeSet.acceptAdmin();

        vm.prank(admin);
        nodeSet.transferAdmin(stranger);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotPendingAdmin.selector, other));
        vm.prank(other);
        nodeSet.acceptAdmin();
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotPendingAdmin.selector, admin));
        vm.prank(admin);
        nodeSet.acceptAdmin();
        assertEq(nodeSet.admin(), admin);
        assertEq(nodeSet.pendingAdmin(), stranger);
    }

    function test_transferAdmin_replacesOrCancelsThePendingAdmin() public {
        address other = address(0x07E4);
        vm.startPrank(admin);
        nodeSet.transferAdmin(stranger);
        nodeSet.transferAdmin(other);
        vm.stopPrank();
        assertEq(nodeSet.pendingAdmin(), other);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotPendingAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.acceptAdmin();

        vm.prank(admin);
        nodeSet.transferAdmin(address(0));
        assertEq(nodeSet.pendingAdmin(), address(0));
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotPendingAdmin.selector, other));
        vm.prank(other);
        nodeSet.acceptAdmin();
        assertEq(nodeSet.admin(), admin);
    }

    function test_transferAdmin_revertsForNonAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.transferAdmin(stranger);
        assertEq(nodeSet.pendingAdmin(), address(0));
    }

    function test_setContracts_recordsTheThreeAddresses() public {
        vm.expectEmit(address(nodeSet));
        emit NodeSet.ContractsSet(address(0x1), address(0x2), address(0x3));
        vm.prank(admin);
        nodeSet.setContracts(address(0x1), address(0x2), address(0x3));
        assertEq(nodeSet.pkpNft(), address(0x1));
        assertEq(nodeSet.pkpPermissions(), address(0x2));
        assertEq(nodeSet.pkpHelper(), address(0x3));
    }

    function test_setContracts_revertsForNonAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.setContracts(address(0x1), address(0x2), address(0x3));
    }
}
