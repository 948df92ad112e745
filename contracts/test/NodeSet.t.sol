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
        nodeSet.setNodes(nodes(1), 1);
        assertEq(nodeSet.threshold(), 1);
        assertEq(nodeSet.nodeCount(), 1);
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

    function test_transferAdmin_movesTheRole() public {
        vm.expectEmit(address(nodeSet));
        emit NodeSet.AdminTransferred(admin, stranger);
        vm.prank(admin);
        nodeSet.transferAdmin(stranger);
        assertEq(nodeSet.admin(), stranger);

        NodeSet.Node[] memory list = nodes(2);
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, admin));
        vm.prank(admin);
        nodeSet.setNodes(list, 1);

        vm.prank(stranger);
        nodeSet.setNodes(list, 1);
        assertEq(nodeSet.epoch(), 1);
    }

    function test_transferAdmin_revertsForNonAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(NodeSet.NotAdmin.selector, stranger));
        vm.prank(stranger);
        nodeSet.transferAdmin(stranger);
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
