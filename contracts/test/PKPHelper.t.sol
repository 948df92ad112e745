// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {PKPNFT} from "../src/PKPNFT.sol";
import {PKPPermissions} from "../src/PKPPermissions.sol";
import {PKPHelper} from "../src/PKPHelper.sol";

contract PKPHelperTest is Fixture {
    bytes32 internal constant SALT = bytes32(uint256(7));
    /// @dev QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH, the CIDv0 `ipfs add` gives an empty
    ///      file: `0x12 0x20 ‖ sha256(0a 04 08 02 18 00)`, as `sigil_primitives::Cid` encodes it.
    bytes internal constant CID = hex"1220bfccda787baba32b59c78450ac3d20b633360b43992c77289f9ed46d843561e6";

    /// @dev A well-formed CIDv0 (34-byte SHA-256 multihash) for `label`.
    function cidOf(string memory label) internal pure returns (bytes memory) {
        return abi.encodePacked(hex"1220", sha256(bytes(label)));
    }

    function test_constructor() public view {
        assertEq(address(helper.pkpNft()), address(nft));
        assertEq(address(helper.permissions()), address(perms));
    }

    function test_keyIdFor_isTheHelpersKeyIdForTheInnerSalt() public view {
        bytes32 inner = keccak256(abi.encodePacked(alice, SALT));
        assertEq(helper.keyIdFor(alice, SALT), nft.keyIdFor(address(helper), inner));
        assertTrue(helper.keyIdFor(alice, SALT) != helper.keyIdFor(bob, SALT));
        assertTrue(helper.keyIdFor(alice, SALT) != nft.keyIdFor(alice, SALT));
    }

    function _helperAttestation(address user, bytes32 salt, bytes memory pubkey) internal view returns (bytes memory) {
        return attest(ATTESTER_KEY, helper.keyIdFor(user, salt), pubkey);
    }

    // ---- mintWithAuthMethods ----

    function _oneAuthMethod(uint256 kind, bytes memory id, bytes memory key, uint256 scope)
        internal
        pure
        returns (PKPHelper.NewAuthMethod[] memory methods)
    {
        methods = new PKPHelper.NewAuthMethod[](1);
        methods[0] = PKPHelper.NewAuthMethod({authMethodType: kind, id: id, userPubkey: key, scopes: scope});
    }

    function test_mintWithAuthMethods_sendToItself_ownsItselfAndHoldsTheCredentialKey() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        vm.prank(alice);
        uint256 tokenId = helper.mintWithAuthMethods(
            SALT, pubkey, att, _oneAuthMethod(3, hex"c0ffee", hex"a501020326200121", 1), true
        );
        address self = nft.getEthAddress(tokenId);
        assertEq(nft.ownerOf(tokenId), self);
        assertEq(perms.getAuthMethodScopes(tokenId, 3, hex"c0ffee"), 1);
        assertEq(perms.getUserPubkey(tokenId, 3, hex"c0ffee"), hex"a501020326200121");
        // neither the minter nor the helper controls it now
        vm.expectRevert(abi.encodeWithSelector(PKPPermissions.NotOwner.selector, tokenId, alice));
        vm.prank(alice);
        perms.addPermittedAddress(tokenId, alice);
        vm.expectRevert(abi.encodeWithSelector(PKPPermissions.NotOwner.selector, tokenId, address(helper)));
        vm.prank(address(helper));
        perms.addPermittedAddress(tokenId, alice);
    }

    function test_mintWithAuthMethods_toCaller() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        vm.prank(alice);
        uint256 tokenId = helper.mintWithAuthMethods(SALT, pubkey, att, _oneAuthMethod(6, hex"01", "", 2), false);
        assertEq(nft.ownerOf(tokenId), alice);
        assertEq(perms.getAuthMethodScopes(tokenId, 6, hex"01"), 2);
        assertEq(perms.getUserPubkey(tokenId, 6, hex"01").length, 0);
    }

    function test_mintWithAuthMethods_badScopesRevertTheMint() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        vm.expectRevert(abi.encodeWithSelector(PKPPermissions.BadScopes.selector, 4));
        vm.prank(alice);
        helper.mintWithAuthMethods(SALT, pubkey, att, _oneAuthMethod(6, hex"01", "", 4), false);
    }

    // ---- claimKey ----

    function test_claimKey_mintsTheAuthMethodsOwnKeyToItself() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes32 keyId = helper.claimKeyIdFor(6, hex"abcd");
        assertTrue(keyId != helper.claimKeyIdFor(6, hex"abce"));
        assertTrue(keyId != helper.claimKeyIdFor(5, hex"abcd"));
        bytes memory att = attest(ATTESTER_KEY, keyId, pubkey);
        // anyone may send it; the PKP ends up owning itself with the auth method permitted
        vm.prank(bob);
        uint256 tokenId = helper.claimKey(6, hex"abcd", pubkey, att);
        assertEq(nft.getKeyId(tokenId), keyId);
        assertEq(nft.ownerOf(tokenId), nft.getEthAddress(tokenId));
        assertEq(perms.getAuthMethodScopes(tokenId, 6, hex"abcd"), 1);
        // a second claim of the same key id fails
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.KeyIdUsed.selector, keyId));
        helper.claimKey(6, hex"abcd", pubkey, att);
    }

    function test_claimKey_anAttestationForAnotherAuthMethodIsRefused() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = attest(ATTESTER_KEY, helper.claimKeyIdFor(6, hex"abcd"), pubkey);
        address recovered = recoverOf(nft.attestationDigest(helper.claimKeyIdFor(6, hex"ffff"), pubkey), att);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, recovered));
        helper.claimKey(6, hex"ffff", pubkey, att);
    }

    // ---- claimActionKey ----

    function test_claimActionKey_mintsTheActionsKeyToItselfPermittingOnlyThatAction() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes32 derived = keccak256("QmAction_alice");
        bytes32 keyId = helper.actionClaimKeyIdFor(cidOf("one"), derived);
        assertTrue(keyId != helper.actionClaimKeyIdFor(cidOf("two"), derived));
        assertTrue(keyId != helper.actionClaimKeyIdFor(cidOf("one"), keccak256("QmAction_bob")));
        bytes memory att = attest(ATTESTER_KEY, keyId, pubkey);
        vm.prank(bob);
        uint256 tokenId = helper.claimActionKey(cidOf("one"), derived, pubkey, att);
        assertEq(nft.getKeyId(tokenId), keyId);
        assertEq(nft.ownerOf(tokenId), nft.getEthAddress(tokenId));
        assertTrue(perms.isPermittedAction(tokenId, cidOf("one")));
        assertEq(perms.getPermittedActions(tokenId).length, 1);
        assertEq(perms.getPermittedAddresses(tokenId).length, 0);
        bytes memory one = cidOf("one");
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.KeyIdUsed.selector, keyId));
        helper.claimActionKey(one, derived, pubkey, att);
    }

    function test_claimActionKey_anAttestationMintsNothingForAnotherAction() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes32 derived = keccak256("QmAction_alice");
        bytes memory att = attest(ATTESTER_KEY, helper.actionClaimKeyIdFor(cidOf("one"), derived), pubkey);
        bytes memory one = cidOf("one");
        bytes memory evil = cidOf("evil");
        // a front-runner swapping in its own action's CID gets no PKP
        address recovered = recoverOf(nft.attestationDigest(helper.actionClaimKeyIdFor(evil, derived), pubkey), att);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, recovered));
        helper.claimActionKey(evil, derived, pubkey, att);
        // nor for another derived key id of the same action
        recovered = recoverOf(nft.attestationDigest(helper.actionClaimKeyIdFor(one, bytes32(uint256(1))), pubkey), att);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, recovered));
        helper.claimActionKey(one, bytes32(uint256(1)), pubkey, att);
        vm.expectRevert(abi.encodeWithSelector(PKPHelper.NotSha256Multihash.selector, bytes(hex"1220")));
        helper.claimActionKey(hex"1220", derived, pubkey, att);
    }

    // ---- mintWithPermissions ----

    function test_mintWithPermissions_endsWithCallerAsOwner() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        bytes[] memory actions = new bytes[](2);
        actions[0] = cidOf("one");
        actions[1] = cidOf("two");
        address[] memory addresses = new address[](2);
        addresses[0] = bob;
        addresses[1] = carol;
        uint256 expectedId = uint256(keccak256(pubkey));

        vm.expectEmit(address(nft));
        emit PKPNFT.PKPMinted(expectedId, helper.keyIdFor(alice, SALT), pubkey, address(helper));
        vm.prank(alice);
        uint256 tokenId = helper.mintWithPermissions(SALT, pubkey, att, actions, addresses);

        assertEq(tokenId, expectedId);
        assertEq(nft.ownerOf(tokenId), alice);
        assertEq(nft.balanceOf(address(helper)), 0);
        assertEq(nft.getKeyId(tokenId), helper.keyIdFor(alice, SALT));
        assertTrue(perms.isPermittedAction(tokenId, cidOf("one")));
        assertTrue(perms.isPermittedAction(tokenId, cidOf("two")));
        assertTrue(perms.isPermittedAddress(tokenId, bob));
        assertTrue(perms.isPermittedAddress(tokenId, carol));
        assertEq(perms.getPermittedActions(tokenId).length, 2);
        assertEq(perms.getPermittedAddresses(tokenId).length, 2);

        // the caller now controls the permissions; the helper does not
        vm.prank(alice);
        perms.removePermittedAddress(tokenId, carol);
        vm.expectRevert(abi.encodeWithSelector(PKPPermissions.NotOwner.selector, tokenId, address(helper)));
        vm.prank(address(helper));
        perms.addPermittedAddress(tokenId, carol);
    }

    function test_mintWithPermissions_withNoPermissions() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        vm.prank(alice);
        uint256 tokenId = helper.mintWithPermissions(SALT, pubkey, att, new bytes[](0), new address[](0));
        assertEq(nft.ownerOf(tokenId), alice);
        assertEq(perms.getPermittedActions(tokenId).length, 0);
        assertEq(perms.getPermittedAddresses(tokenId).length, 0);
    }

    function test_mintWithPermissions_duplicatePermissionRevertsWholeMint() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        bytes[] memory actions = new bytes[](2);
        actions[0] = cidOf("one");
        actions[1] = cidOf("one");
        vm.expectRevert(PKPPermissions.AlreadyPermitted.selector);
        vm.prank(alice);
        helper.mintWithPermissions(SALT, pubkey, att, actions, new address[](0));
        assertEq(nft.ownerOrZero(uint256(keccak256(pubkey))), address(0));
        assertFalse(nft.isBurned(uint256(keccak256(pubkey))));
    }

    function test_mintWithPermissions_revertsOnABadCid() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        bytes[] memory actions = new bytes[](2);
        actions[0] = cidOf("one");
        actions[1] = "QmTwo"; // the base58 text, not the multihash bytes
        vm.expectRevert(abi.encodeWithSelector(PKPHelper.NotSha256Multihash.selector, bytes("QmTwo")));
        vm.prank(alice);
        helper.mintWithPermissions(SALT, pubkey, att, actions, new address[](0));
        assertEq(nft.ownerOrZero(uint256(keccak256(pubkey))), address(0));
        assertFalse(nft.isBurned(uint256(keccak256(pubkey))));
    }

    function test_mintWithPermissions_revertsOnBadAttestation() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = attest(OTHER_KEY, helper.keyIdFor(alice, SALT), pubkey);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, vm.addr(OTHER_KEY)));
        vm.prank(alice);
        helper.mintWithPermissions(SALT, pubkey, att, new bytes[](0), new address[](0));
    }

    function test_mintWithPermissions_directKeyIdAttestationIsRejected() public {
        // an attestation for alice minting directly does not verify through the helper
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = attest(ATTESTER_KEY, nft.keyIdFor(alice, SALT), pubkey);
        address recovered = recoverOf(nft.attestationDigest(helper.keyIdFor(alice, SALT), pubkey), att);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, recovered));
        vm.prank(alice);
        helper.mintWithPermissions(SALT, pubkey, att, new bytes[](0), new address[](0));
    }

    function test_mintWithPermissions_reusedSaltReverts() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        vm.prank(alice);
        helper.mintWithPermissions(SALT, pubkey, att, new bytes[](0), new address[](0));

        bytes memory pubkey2 = pubkeyFor(2);
        bytes memory att2 = _helperAttestation(alice, SALT, pubkey2);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.KeyIdUsed.selector, helper.keyIdFor(alice, SALT)));
        vm.prank(alice);
        helper.mintWithPermissions(SALT, pubkey2, att2, new bytes[](0), new address[](0));

        // another user with the same salt gets a different key id
        bytes memory att3 = _helperAttestation(bob, SALT, pubkey2);
        vm.prank(bob);
        uint256 tokenId = helper.mintWithPermissions(SALT, pubkey2, att3, new bytes[](0), new address[](0));
        assertEq(nft.ownerOf(tokenId), bob);
    }

    // ---- mintGrantBurn ----

    function test_mintGrantBurn_sealsTheAction() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        uint256 expectedId = uint256(keccak256(pubkey));

        vm.expectEmit(address(helper));
        emit PKPHelper.MintGrantBurned(expectedId, CID, alice);
        vm.prank(alice);
        uint256 tokenId = helper.mintGrantBurn(SALT, pubkey, att, CID);

        assertEq(tokenId, expectedId);
        assertEq(nft.ownerOrZero(tokenId), address(0));
        assertTrue(nft.isBurned(tokenId));
        assertEq(nft.getPubkey(tokenId), pubkey);
        assertEq(nft.getKeyId(tokenId), helper.keyIdFor(alice, SALT));
        assertTrue(perms.isPermittedAction(tokenId, CID));
        bytes[] memory actions = perms.getPermittedActions(tokenId);
        assertEq(actions.length, 1);
        assertEq(actions[0], CID);
        assertEq(perms.getPermittedAddresses(tokenId).length, 0);
        assertEq(perms.getPermittedAuthMethods(tokenId).length, 0);

        // nobody can change the permissions any more
        bytes memory err = abi.encodeWithSelector(PKPPermissions.TokenBurned.selector, tokenId);
        address[3] memory callers = [alice, address(helper), bob];
        for (uint256 i = 0; i < callers.length; i++) {
            vm.startPrank(callers[i]);
            vm.expectRevert(err);
            perms.addPermittedAction(tokenId, "QmOther");
            vm.expectRevert(err);
            perms.removePermittedAction(tokenId, CID);
            vm.expectRevert(err);
            perms.addPermittedAddress(tokenId, bob);
            vm.expectRevert(err);
            perms.removePermittedAddress(tokenId, bob);
            vm.expectRevert(err);
            perms.addPermittedAuthMethod(tokenId, 1, "a", 1);
            vm.expectRevert(err);
            perms.removePermittedAuthMethod(tokenId, 1, "a");
            vm.stopPrank();
        }
    }

    function test_mintGrantBurn_cannotBeReminted() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        vm.prank(alice);
        helper.mintGrantBurn(SALT, pubkey, att, CID);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.KeyIdUsed.selector, helper.keyIdFor(alice, SALT)));
        vm.prank(alice);
        helper.mintGrantBurn(SALT, pubkey, att, CID);
    }

    function test_mintGrantBurn_attestationIsBoundToTheUser() public {
        // bob cannot use an attestation made for alice's key id
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        address recovered = recoverOf(nft.attestationDigest(helper.keyIdFor(bob, SALT), pubkey), att);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, recovered));
        vm.prank(bob);
        helper.mintGrantBurn(SALT, pubkey, att, CID);
    }

    function test_mintGrantBurn_revertsOnBadPubkey() public {
        bytes memory pubkey = abi.encodePacked(bytes1(0x02), bytes32(uint256(1)));
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        vm.expectRevert(PKPNFT.BadPubkey.selector);
        vm.prank(alice);
        helper.mintGrantBurn(SALT, pubkey, att, CID);
    }

    // ---- CID format (both entry points) ----

    function _expectBadCid(bytes memory cid) internal {
        bytes memory pubkey = pubkeyFor(9);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        vm.expectRevert(abi.encodeWithSelector(PKPHelper.NotSha256Multihash.selector, cid));
        vm.prank(alice);
        helper.mintGrantBurn(SALT, pubkey, att, cid);

        bytes[] memory actions = new bytes[](1);
        actions[0] = cid;
        vm.expectRevert(abi.encodeWithSelector(PKPHelper.NotSha256Multihash.selector, cid));
        vm.prank(alice);
        helper.mintWithPermissions(SALT, pubkey, att, actions, new address[](0));

        // nothing was minted: the key id is still free
        uint256 tokenId = uint256(keccak256(pubkey));
        assertEq(nft.ownerOrZero(tokenId), address(0));
        assertFalse(nft.isBurned(tokenId));
    }

    function test_cid_revertsOnWrongLength() public {
        _expectBadCid("");
        _expectBadCid(hex"12");
        _expectBadCid(hex"1220");
        // 33 and 35 bytes with the right prefix
        _expectBadCid(abi.encodePacked(hex"1220", bytes31(sha256("short"))));
        _expectBadCid(abi.encodePacked(CID, hex"00"));
        // the base58 text of a valid CID is 46 bytes, not the multihash
        _expectBadCid("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
        // a CIDv1 (version 1, dag-pb, sha2-256): 36 bytes
        _expectBadCid(abi.encodePacked(hex"01701220", sha256("v1")));
    }

    function test_cid_revertsOnWrongPrefix() public {
        bytes32 digest = sha256("action");
        _expectBadCid(abi.encodePacked(hex"1320", digest)); // sha3-512 code
        _expectBadCid(abi.encodePacked(hex"1b20", digest)); // keccak-256 code
        _expectBadCid(abi.encodePacked(hex"1221", digest)); // wrong digest length byte
        _expectBadCid(abi.encodePacked(hex"0000", digest));
        _expectBadCid(abi.encodePacked(hex"2012", digest)); // swapped
    }

    function test_cid_aGoodCidPassesBothEntryPoints() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = _helperAttestation(alice, SALT, pubkey);
        vm.prank(alice);
        uint256 sealed_ = helper.mintGrantBurn(SALT, pubkey, att, CID);
        assertTrue(perms.isPermittedAction(sealed_, CID));

        bytes memory pubkey2 = pubkeyFor(2);
        bytes memory att2 = _helperAttestation(bob, SALT, pubkey2);
        bytes[] memory actions = new bytes[](1);
        actions[0] = CID;
        vm.prank(bob);
        uint256 owned = helper.mintWithPermissions(SALT, pubkey2, att2, actions, new address[](0));
        assertTrue(perms.isPermittedAction(owned, CID));
        assertEq(nft.ownerOf(owned), bob);
    }
}
