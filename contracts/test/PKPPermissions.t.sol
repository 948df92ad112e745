// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {PKPPermissions} from "../src/PKPPermissions.sol";

contract PKPPermissionsTest is Fixture {
    uint256 internal tokenId;

    bytes internal constant CID_A = "QmActionA";
    bytes internal constant CID_B = "QmActionB";
    bytes internal constant CID_C = "QmActionC";
    bytes internal constant CID_D = "QmActionD";

    function setUp() public override {
        super.setUp();
        tokenId = mintAs(alice, bytes32(uint256(1)), pubkeyFor(1));
    }

    function test_constructor() public view {
        assertEq(address(perms.pkpNft()), address(nft));
    }

    // ---- actions ----

    function test_actions_addGetIsRemove() public {
        assertFalse(perms.isPermittedAction(tokenId, CID_A));
        vm.expectEmit(address(perms));
        emit PKPPermissions.PermittedActionAdded(tokenId, CID_A);
        vm.prank(alice);
        perms.addPermittedAction(tokenId, CID_A);

        assertTrue(perms.isPermittedAction(tokenId, CID_A));
        bytes[] memory list = perms.getPermittedActions(tokenId);
        assertEq(list.length, 1);
        assertEq(list[0], CID_A);

        vm.expectEmit(address(perms));
        emit PKPPermissions.PermittedActionRemoved(tokenId, CID_A);
        vm.prank(alice);
        perms.removePermittedAction(tokenId, CID_A);
        assertFalse(perms.isPermittedAction(tokenId, CID_A));
        assertEq(perms.getPermittedActions(tokenId).length, 0);
    }

    function test_actions_addTwiceReverts() public {
        vm.startPrank(alice);
        perms.addPermittedAction(tokenId, CID_A);
        vm.expectRevert(PKPPermissions.AlreadyPermitted.selector);
        perms.addPermittedAction(tokenId, CID_A);
        vm.stopPrank();
    }

    function test_actions_removeAbsentReverts() public {
        vm.expectRevert(PKPPermissions.NotPermitted.selector);
        vm.prank(alice);
        perms.removePermittedAction(tokenId, CID_A);

        vm.startPrank(alice);
        perms.addPermittedAction(tokenId, CID_A);
        perms.removePermittedAction(tokenId, CID_A);
        vm.expectRevert(PKPPermissions.NotPermitted.selector);
        perms.removePermittedAction(tokenId, CID_A);
        vm.stopPrank();
    }

    function test_actions_swapAndPopKeepsListConsistent() public {
        vm.startPrank(alice);
        perms.addPermittedAction(tokenId, CID_A);
        perms.addPermittedAction(tokenId, CID_B);
        perms.addPermittedAction(tokenId, CID_C);
        perms.addPermittedAction(tokenId, CID_D);

        perms.removePermittedAction(tokenId, CID_B); // D moves into B's slot
        _expectActions(_list(CID_A, CID_D, CID_C));
        assertFalse(perms.isPermittedAction(tokenId, CID_B));

        perms.removePermittedAction(tokenId, CID_D); // the moved entry's index was updated
        _expectActions(_list(CID_A, CID_C));

        perms.removePermittedAction(tokenId, CID_C); // removing the last entry
        _expectActions(_list(CID_A));

        perms.addPermittedAction(tokenId, CID_B);
        perms.addPermittedAction(tokenId, CID_D);
        perms.removePermittedAction(tokenId, CID_A);
        _expectActions(_list(CID_D, CID_B));
        perms.removePermittedAction(tokenId, CID_D);
        perms.removePermittedAction(tokenId, CID_B);
        _expectActions(new bytes[](0));
        vm.stopPrank();
    }

    // ---- addresses ----

    function test_addresses_addGetIsRemove() public {
        assertFalse(perms.isPermittedAddress(tokenId, bob));
        vm.expectEmit(address(perms));
        emit PKPPermissions.PermittedAddressAdded(tokenId, bob);
        vm.prank(alice);
        perms.addPermittedAddress(tokenId, bob);

        assertTrue(perms.isPermittedAddress(tokenId, bob));
        address[] memory list = perms.getPermittedAddresses(tokenId);
        assertEq(list.length, 1);
        assertEq(list[0], bob);

        vm.expectEmit(address(perms));
        emit PKPPermissions.PermittedAddressRemoved(tokenId, bob);
        vm.prank(alice);
        perms.removePermittedAddress(tokenId, bob);
        assertFalse(perms.isPermittedAddress(tokenId, bob));
        assertEq(perms.getPermittedAddresses(tokenId).length, 0);
    }

    function test_addresses_addTwiceAndRemoveAbsentRevert() public {
        vm.startPrank(alice);
        vm.expectRevert(PKPPermissions.NotPermitted.selector);
        perms.removePermittedAddress(tokenId, bob);
        perms.addPermittedAddress(tokenId, bob);
        vm.expectRevert(PKPPermissions.AlreadyPermitted.selector);
        perms.addPermittedAddress(tokenId, bob);
        vm.stopPrank();
    }

    function test_addresses_swapAndPopKeepsListConsistent() public {
        address d = address(0xD00D);
        vm.startPrank(alice);
        perms.addPermittedAddress(tokenId, alice);
        perms.addPermittedAddress(tokenId, bob);
        perms.addPermittedAddress(tokenId, carol);
        perms.addPermittedAddress(tokenId, d);

        perms.removePermittedAddress(tokenId, alice); // d moves to the front
        _expectAddresses(_addrs(d, bob, carol));
        assertFalse(perms.isPermittedAddress(tokenId, alice));

        perms.removePermittedAddress(tokenId, d);
        _expectAddresses(_addrs(carol, bob));

        perms.removePermittedAddress(tokenId, bob);
        _expectAddresses(_addrs(carol));

        perms.addPermittedAddress(tokenId, alice);
        perms.removePermittedAddress(tokenId, carol);
        perms.removePermittedAddress(tokenId, alice);
        _expectAddresses(new address[](0));
        vm.stopPrank();
    }

    // ---- auth methods ----

    function test_authMethods_addGetIsRemove() public {
        bytes memory id = "user@example";
        assertFalse(perms.isPermittedAuthMethod(tokenId, 1, id));
        assertEq(perms.getAuthMethodScopes(tokenId, 1, id), 0);

        vm.expectEmit(address(perms));
        emit PKPPermissions.PermittedAuthMethodAdded(tokenId, 1, id, 2);
        vm.prank(alice);
        perms.addPermittedAuthMethod(tokenId, 1, id, 2);

        assertTrue(perms.isPermittedAuthMethod(tokenId, 1, id));
        assertEq(perms.getAuthMethodScopes(tokenId, 1, id), 2);
        // the type is part of the identity
        assertFalse(perms.isPermittedAuthMethod(tokenId, 2, id));
        assertEq(perms.getAuthMethodScopes(tokenId, 2, id), 0);

        PKPPermissions.AuthMethod[] memory list = perms.getPermittedAuthMethods(tokenId);
        assertEq(list.length, 1);
        assertEq(list[0].authMethodType, 1);
        assertEq(list[0].id, id);
        assertEq(list[0].scopes, 2);

        vm.expectEmit(address(perms));
        emit PKPPermissions.PermittedAuthMethodRemoved(tokenId, 1, id);
        vm.prank(alice);
        perms.removePermittedAuthMethod(tokenId, 1, id);
        assertFalse(perms.isPermittedAuthMethod(tokenId, 1, id));
        assertEq(perms.getAuthMethodScopes(tokenId, 1, id), 0);
        assertEq(perms.getPermittedAuthMethods(tokenId).length, 0);
    }

    function test_authMethods_validScopes() public {
        vm.startPrank(alice);
        perms.addPermittedAuthMethod(tokenId, 1, "a", 1);
        perms.addPermittedAuthMethod(tokenId, 1, "b", 2);
        perms.addPermittedAuthMethod(tokenId, 1, "c", 3);
        vm.stopPrank();
        assertEq(perms.getAuthMethodScopes(tokenId, 1, "a"), 1);
        assertEq(perms.getAuthMethodScopes(tokenId, 1, "b"), 2);
        assertEq(perms.getAuthMethodScopes(tokenId, 1, "c"), 3);
    }

    function test_authMethods_badScopesRevert() public {
        uint256[5] memory bad = [uint256(0), 4, 5, 8, type(uint256).max];
        for (uint256 i = 0; i < bad.length; i++) {
            vm.expectRevert(abi.encodeWithSelector(PKPPermissions.BadScopes.selector, bad[i]));
            vm.prank(alice);
            perms.addPermittedAuthMethod(tokenId, 1, "a", bad[i]);
        }
        assertEq(perms.getPermittedAuthMethods(tokenId).length, 0);
    }

    function test_authMethods_addTwiceAndRemoveAbsentRevert() public {
        vm.startPrank(alice);
        vm.expectRevert(PKPPermissions.NotPermitted.selector);
        perms.removePermittedAuthMethod(tokenId, 1, "a");
        perms.addPermittedAuthMethod(tokenId, 1, "a", 1);
        vm.expectRevert(PKPPermissions.AlreadyPermitted.selector);
        perms.addPermittedAuthMethod(tokenId, 1, "a", 2);
        vm.stopPrank();
        assertEq(perms.getAuthMethodScopes(tokenId, 1, "a"), 1);
    }

    function test_authMethods_idEncodingIsUnambiguous() public {
        // The lookup key is keccak256(abi.encode(type, id)), so pairs whose packed bytes could
        // overlap stay distinct.
        vm.startPrank(alice);
        perms.addPermittedAuthMethod(tokenId, 1, hex"00", 1);
        perms.addPermittedAuthMethod(tokenId, 256, "", 1);
        perms.addPermittedAuthMethod(tokenId, 1, "", 2);
        vm.stopPrank();
        assertEq(perms.getAuthMethodScopes(tokenId, 1, hex"00"), 1);
        assertEq(perms.getAuthMethodScopes(tokenId, 256, ""), 1);
        assertEq(perms.getAuthMethodScopes(tokenId, 1, ""), 2);
        assertEq(perms.getPermittedAuthMethods(tokenId).length, 3);
    }

    function test_authMethods_swapAndPopKeepsListConsistent() public {
        vm.startPrank(alice);
        perms.addPermittedAuthMethod(tokenId, 1, "a", 1);
        perms.addPermittedAuthMethod(tokenId, 2, "b", 2);
        perms.addPermittedAuthMethod(tokenId, 3, "c", 3);
        perms.addPermittedAuthMethod(tokenId, 4, "d", 1);

        perms.removePermittedAuthMethod(tokenId, 2, "b"); // (4,d) moves into slot 1
        PKPPermissions.AuthMethod[] memory list = perms.getPermittedAuthMethods(tokenId);
        assertEq(list.length, 3);
        _expectAuth(list[0], 1, "a", 1);
        _expectAuth(list[1], 4, "d", 1);
        _expectAuth(list[2], 3, "c", 3);
        assertFalse(perms.isPermittedAuthMethod(tokenId, 2, "b"));
        assertEq(perms.getAuthMethodScopes(tokenId, 4, "d"), 1);
        assertEq(perms.getAuthMethodScopes(tokenId, 3, "c"), 3);

        perms.removePermittedAuthMethod(tokenId, 4, "d");
        list = perms.getPermittedAuthMethods(tokenId);
        assertEq(list.length, 2);
        _expectAuth(list[0], 1, "a", 1);
        _expectAuth(list[1], 3, "c", 3);

        perms.removePermittedAuthMethod(tokenId, 1, "a");
        list = perms.getPermittedAuthMethods(tokenId);
        assertEq(list.length, 1);
        _expectAuth(list[0], 3, "c", 3);
        assertEq(perms.getAuthMethodScopes(tokenId, 3, "c"), 3);

        perms.removePermittedAuthMethod(tokenId, 3, "c");
        assertEq(perms.getPermittedAuthMethods(tokenId).length, 0);
        vm.stopPrank();
    }

    // ---- who may change permissions ----

    function test_everyMutator_revertsForNonOwner() public {
        _expectAllMutatorsRevert(bob, abi.encodeWithSelector(PKPPermissions.NotOwner.selector, tokenId, bob));
    }

    function test_everyMutator_revertsForApprovedButNotOwner() public {
        vm.startPrank(alice);
        nft.approve(bob, tokenId);
        nft.setApprovalForAll(carol, true);
        vm.stopPrank();
        _expectAllMutatorsRevert(bob, abi.encodeWithSelector(PKPPermissions.NotOwner.selector, tokenId, bob));
        _expectAllMutatorsRevert(carol, abi.encodeWithSelector(PKPPermissions.NotOwner.selector, tokenId, carol));
    }

    function test_everyMutator_revertsForUnknownToken() public {
        tokenId = 777;
        _expectAllMutatorsRevert(alice, abi.encodeWithSelector(PKPPermissions.NotOwner.selector, uint256(777), alice));
    }

    function test_everyMutator_revertsAfterBurn() public {
        vm.startPrank(alice);
        perms.addPermittedAction(tokenId, CID_A);
        perms.addPermittedAddress(tokenId, bob);
        perms.addPermittedAuthMethod(tokenId, 1, "a", 1);
        nft.burn(tokenId);
        vm.stopPrank();

        bytes memory err = abi.encodeWithSelector(PKPPermissions.TokenBurned.selector, tokenId);
        _expectAllMutatorsRevert(alice, err);
        _expectAllMutatorsRevert(bob, err);

        // permissions set before the burn stay readable and unchanged
        assertTrue(perms.isPermittedAction(tokenId, CID_A));
        assertTrue(perms.isPermittedAddress(tokenId, bob));
        assertEq(perms.getAuthMethodScopes(tokenId, 1, "a"), 1);
        assertEq(perms.getPermittedActions(tokenId).length, 1);
    }

    function test_transfer_movesControl() public {
        vm.prank(alice);
        perms.addPermittedAction(tokenId, CID_A);
        vm.prank(alice);
        nft.transferFrom(alice, bob, tokenId);

        _expectAllMutatorsRevert(alice, abi.encodeWithSelector(PKPPermissions.NotOwner.selector, tokenId, alice));

        // permissions travel with the token; the new owner controls them
        assertTrue(perms.isPermittedAction(tokenId, CID_A));
        vm.startPrank(bob);
        perms.removePermittedAction(tokenId, CID_A);
        perms.addPermittedAction(tokenId, CID_B);
        perms.addPermittedAddress(tokenId, carol);
        perms.removePermittedAddress(tokenId, carol);
        perms.addPermittedAuthMethod(tokenId, 1, "a", 3);
        perms.removePermittedAuthMethod(tokenId, 1, "a");
        vm.stopPrank();
        _expectActions(_list(CID_B));
    }

    function test_views_emptyForUnknownToken() public view {
        assertEq(perms.getPermittedActions(999).length, 0);
        assertEq(perms.getPermittedAddresses(999).length, 0);
        assertEq(perms.getPermittedAuthMethods(999).length, 0);
        assertFalse(perms.isPermittedAction(999, CID_A));
        assertFalse(perms.isPermittedAddress(999, bob));
        assertFalse(perms.isPermittedAuthMethod(999, 1, "a"));
        assertEq(perms.getAuthMethodScopes(999, 1, "a"), 0);
    }

    function test_permissions_arePerToken() public {
        uint256 other = mintAs(alice, bytes32(uint256(2)), pubkeyFor(2));
        vm.prank(alice);
        perms.addPermittedAction(tokenId, CID_A);
        assertTrue(perms.isPermittedAction(tokenId, CID_A));
        assertFalse(perms.isPermittedAction(other, CID_A));
        assertEq(perms.getPermittedActions(other).length, 0);
    }

    // ---- helpers ----

    /// Calls each of the six mutators as `caller` and expects each to revert with `err`.
    function _expectAllMutatorsRevert(address caller, bytes memory err) internal {
        uint256 id = tokenId;
        vm.startPrank(caller);
        vm.expectRevert(err);
        perms.addPermittedAction(id, CID_C);
        vm.expectRevert(err);
        perms.removePermittedAction(id, CID_A);
        vm.expectRevert(err);
        perms.addPermittedAddress(id, carol);
        vm.expectRevert(err);
        perms.removePermittedAddress(id, bob);
        vm.expectRevert(err);
        perms.addPermittedAuthMethod(id, 1, "z", 1);
        vm.expectRevert(err);
        perms.removePermittedAuthMethod(id, 1, "a");
        vm.stopPrank();
    }

    function _expectActions(bytes[] memory expected) internal view {
        bytes[] memory got = perms.getPermittedActions(tokenId);
        assertEq(got.length, expected.length, "actions length");
        for (uint256 i = 0; i < expected.length; i++) {
            assertEq(got[i], expected[i]);
            assertTrue(perms.isPermittedAction(tokenId, expected[i]));
        }
    }

    function _expectAddresses(address[] memory expected) internal view {
        address[] memory got = perms.getPermittedAddresses(tokenId);
        assertEq(got.length, expected.length, "addresses length");
        for (uint256 i = 0; i < expected.length; i++) {
            assertEq(got[i], expected[i]);
            assertTrue(perms.isPermittedAddress(tokenId, expected[i]));
        }
    }

    function _expectAuth(PKPPermissions.AuthMethod memory m, uint256 t, bytes memory id, uint256 scopes) internal pure {
        assertEq(m.authMethodType, t);
        assertEq(m.id, id);
        assertEq(m.scopes, scopes);
    }

    function _list(bytes memory a) internal pure returns (bytes[] memory l) {
        l = new bytes[](1);
        l[0] = a;
    }

    function _list(bytes memory a, bytes memory b) internal pure returns (bytes[] memory l) {
        l = new bytes[](2);
        (l[0], l[1]) = (a, b);
    }

    function _list(bytes memory a, bytes memory b, bytes memory c) internal pure returns (bytes[] memory l) {
        l = new bytes[](3);
        (l[0], l[1], l[2]) = (a, b, c);
    }

    function _addrs(address a) internal pure returns (address[] memory l) {
        l = new address[](1);
        l[0] = a;
    }

    function _addrs(address a, address b) internal pure returns (address[] memory l) {
        l = new address[](2);
        (l[0], l[1]) = (a, b);
    }

    function _addrs(address a, address b, address c) internal pure returns (address[] memory l) {
        l = new address[](3);
        (l[0], l[1], l[2]) = (a, b, c);
    }

    function test_userPubkey_setWithTheMethodAndGoneWithIt() public {
        vm.prank(alice);
        perms.addPermittedAuthMethodWithPubkey(tokenId, 3, hex"aa", hex"bbcc", 1);
        assertEq(perms.getUserPubkey(tokenId, 3, hex"aa"), hex"bbcc");
        assertEq(perms.getAuthMethodScopes(tokenId, 3, hex"aa"), 1);
        vm.prank(alice);
        perms.removePermittedAuthMethod(tokenId, 3, hex"aa");
        assertEq(perms.getUserPubkey(tokenId, 3, hex"aa").length, 0);
    }

    function test_userPubkey_anIdKeepsItsFirstKeyOnEveryPkp() public {
        vm.prank(alice);
        perms.addPermittedAuthMethodWithPubkey(tokenId, 3, hex"aa", hex"bbcc", 1);
        // Bob lists Alice's (public) credential id on his own PKP with his own key: refused.
        uint256 bobs = mintAs(bob, bytes32(uint256(2)), pubkeyFor(2));
        vm.expectRevert(abi.encodeWithSelector(PKPPermissions.PubkeyBoundElsewhere.selector, 3, hex"aa"));
        vm.prank(bob);
        perms.addPermittedAuthMethodWithPubkey(bobs, 3, hex"aa", hex"ddee", 1);
        // With the same key it may be listed again (the same passkey on two PKPs), also after removal.
        vm.prank(bob);
        perms.addPermittedAuthMethodWithPubkey(bobs, 3, hex"aa", hex"bbcc", 1);
        vm.prank(alice);
        perms.removePermittedAuthMethod(tokenId, 3, hex"aa");
        vm.expectRevert(abi.encodeWithSelector(PKPPermissions.PubkeyBoundElsewhere.selector, 3, hex"aa"));
        vm.prank(alice);
        perms.addPermittedAuthMethodWithPubkey(tokenId, 3, hex"aa", hex"ffff", 1);
    }

    function test_userPubkey_onlyTheOwnerSetsIt() public {
        vm.expectRevert(abi.encodeWithSelector(PKPPermissions.NotOwner.selector, tokenId, bob));
        vm.prank(bob);
        perms.addPermittedAuthMethodWithPubkey(tokenId, 3, hex"aa", hex"bbcc", 1);
    }
}
