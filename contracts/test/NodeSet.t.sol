// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {NodeSet} from "../src/NodeSet.sol";

contract NodeSetTest is Base {
    address internal admin = address(0xAD111);
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

    function test_setAttester_setsAndEmits() public {
        address attester = address(0xA77E5);
        vm.expectEmit(address(nodeSet));
        emit NodeSet.AttesterSet(attester);
        vm.prank(admin);
        nodeSet.setAttester(attester);
        assertEq(nodeSet.attester(), attester);
        // setting the attester does not start an epoch
        assertEq(nodeSet.epoch(), 0);
    }

    function test_setAttester_revertsForNonAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.setAttester(stranger);
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
