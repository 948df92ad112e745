// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Fixture} from "./Fixture.sol";
import {NodeSet} from "../src/NodeSet.sol";
import {PKPNFT} from "../src/PKPNFT.sol";

contract PKPNFTTest is Fixture {
    bytes32 internal constant SALT = bytes32(uint256(1));

    // Public key of the secp256k1 private key 1 (the generator point) and its address.
    bytes internal constant G_PUBKEY =
        hex"0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
    address internal constant G_ADDRESS = 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf;

    // ---- metadata, key ids, digests ----

    function test_metadata() public view {
        assertEq(nft.name(), "Sigil PKP");
        assertEq(nft.symbol(), "PKP");
        assertEq(address(nft.nodeSet()), address(nodeSet));
    }

    function test_keyIdFor_isKeccakOfMinterAndSalt() public view {
        assertEq(nft.keyIdFor(alice, SALT), keccak256(abi.encodePacked(alice, SALT)));
        assertEq(nft.keyIdFor(alice, SALT), keccak256(bytes.concat(bytes20(alice), SALT)));
        assertTrue(nft.keyIdFor(alice, SALT) != nft.keyIdFor(bob, SALT));
        assertTrue(nft.keyIdFor(alice, SALT) != nft.keyIdFor(alice, bytes32(uint256(2))));
    }

    /// Pins the attestation digest layout: 25-byte tag, 32-byte chain id, 20-byte contract
    /// address, 32-byte key id, 65-byte public key (174 bytes in all).
    function test_attestationDigest_format() public {
        vm.chainId(424242);
        bytes32 keyId = keccak256("some key id");
        bytes memory pubkey = pubkeyFor(7);
        bytes memory preimage =
            abi.encodePacked(bytes("sigil-mint-attestation-v1"), uint256(424242), address(nft), keyId, pubkey);
        assertEq(preimage.length, 174);
        assertEq(bytes("sigil-mint-attestation-v1").length, 25);
        bytes memory byHand =
            bytes.concat("sigil-mint-attestation-v1", bytes32(uint256(424242)), bytes20(address(nft)), keyId, pubkey);
        assertEq(preimage, byHand);
        assertEq(nft.attestationDigest(keyId, pubkey), keccak256(preimage));
    }

    /// Fixed vector, shared with the network's attester: chain 31337, contract at
    /// 0x5FbDB2315678afecb367f032d93F642f64180aa3 (first contract of anvil's first account),
    /// key id keyIdFor(0xf39F…2266, 1), the generator point as public key, attester key 0xa77e5.
    function test_attestationDigest_vector() public {
        address minter = 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266;
        address at = 0x5FbDB2315678afecb367f032d93F642f64180aa3;
        bytes32 keyId = 0x67c6a2e151d4352a55021b5d0028c18121cfc24c7d73b179d22b17daff069c6e;
        bytes32 digest = 0xeef55fcccac3eb9e5e722b7ce241e6ffaaf29eed4c101e31e2b0030280212205;

        assertEq(keccak256(abi.encodePacked(minter, bytes32(uint256(1)))), keyId);
        bytes memory preimage = hex"736967696c2d6d696e742d6174746573746174696f6e2d7631"
            hex"0000000000000000000000000000000000000000000000000000000000007a69"
            hex"5fbdb2315678afecb367f032d93f642f64180aa3"
            hex"67c6a2e151d4352a55021b5d0028c18121cfc24c7d73b179d22b17daff069c6e" hex"04"
            hex"79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
            hex"483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
        assertEq(keccak256(preimage), digest);
        assertEq(keccak256(abi.encodePacked("sigil-mint-attestation-v1", uint256(31337), at, keyId, G_PUBKEY)), digest);

        // The contract computes the same digest at that address on that chain.
        vm.chainId(31337);
        vm.etch(at, address(nft).code);
        assertEq(PKPNFT(at).attestationDigest(keyId, G_PUBKEY), digest);
        assertEq(PKPNFT(at).keyIdFor(minter, bytes32(uint256(1))), keyId);

        // RFC 6979 signature of the digest by the test attester key.
        assertEq(vm.addr(ATTESTER_KEY), 0x83Ae882bE86b8Ab6C4Eb270ee2B0c0383EC41f3C);
        assertEq(
            signDigest(ATTESTER_KEY, digest),
            hex"86f592d9f83760fd6ab3632efeb0c83d4c6033447e42d2fd303f6b0a885228c7"
            hex"754f14d4b6439a71df2d6d5bd829db7267e75e3eea08274ef6c5c8930cb4cc27" hex"1b"
        );
    }

    function test_attestationDigest_dependsOnChainAndContract() public {
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        bytes memory pubkey = pubkeyFor(1);
        bytes32 d1 = nft.attestationDigest(keyId, pubkey);
        PKPNFT other = new PKPNFT(nodeSet);
        assertTrue(other.attestationDigest(keyId, pubkey) != d1);
        vm.chainId(block.chainid + 1);
        assertTrue(nft.attestationDigest(keyId, pubkey) != d1);
    }

    // ---- mint ----

    function test_mint_mintsToCallerAndStoresKey() public {
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        uint256 expectedId = uint256(keccak256(G_PUBKEY));
        bytes memory att = attest(ATTESTER_KEY, keyId, G_PUBKEY);

        vm.expectEmit(address(nft));
        emit PKPNFT.PKPMinted(expectedId, keyId, G_PUBKEY, alice);
        vm.prank(alice);
        uint256 tokenId = nft.mint(SALT, G_PUBKEY, att);

        assertEq(tokenId, expectedId);
        assertEq(nft.ownerOf(tokenId), alice);
        assertEq(nft.ownerOrZero(tokenId), alice);
        assertEq(nft.balanceOf(alice), 1);
        assertEq(nft.getPubkey(tokenId), G_PUBKEY);
        assertEq(nft.getKeyId(tokenId), keyId);
        assertEq(nft.getEthAddress(tokenId), G_ADDRESS);
        assertFalse(nft.isBurned(tokenId));
    }

    function test_mint_acceptsRecoveryIdZeroOrOne() public {
        for (uint256 i = 0; i < 4; i++) {
            bytes32 salt = bytes32(i + 100);
            bytes memory pubkey = pubkeyFor(i + 100);
            (uint8 v, bytes32 r, bytes32 s) =
                vm.sign(ATTESTER_KEY, nft.attestationDigest(nft.keyIdFor(alice, salt), pubkey));
            vm.prank(alice);
            uint256 tokenId = nft.mint(salt, pubkey, abi.encodePacked(r, s, v - 27));
            assertEq(nft.ownerOf(tokenId), alice);
        }
    }

    function test_mint_sameSaltDifferentMinters() public {
        uint256 a = mintAs(alice, SALT, pubkeyFor(1));
        uint256 b = mintAs(bob, SALT, pubkeyFor(2));
        assertEq(nft.ownerOf(a), alice);
        assertEq(nft.ownerOf(b), bob);
        assertTrue(nft.getKeyId(a) != nft.getKeyId(b));
    }

    function test_mint_revertsOnReusedKeyId() public {
        mintAs(alice, SALT, pubkeyFor(1));
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        bytes memory pubkey = pubkeyFor(2);
        bytes memory att = attest(ATTESTER_KEY, keyId, pubkey);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.KeyIdUsed.selector, keyId));
        vm.prank(alice);
        nft.mint(SALT, pubkey, att);
    }

    function test_mint_revertsOnReusedKeyIdAfterBurn() public {
        uint256 tokenId = mintAs(alice, SALT, pubkeyFor(1));
        vm.prank(alice);
        nft.burn(tokenId);
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        bytes memory att = attest(ATTESTER_KEY, keyId, pubkeyFor(1));
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.KeyIdUsed.selector, keyId));
        vm.prank(alice);
        nft.mint(SALT, pubkeyFor(1), att);
    }

    function test_mint_revertsWhenPubkeyWasMintedBefore() public {
        bytes memory pubkey = pubkeyFor(1);
        uint256 tokenId = mintAs(alice, SALT, pubkey);
        vm.prank(alice);
        nft.burn(tokenId);
        bytes32 salt2 = bytes32(uint256(2));
        bytes memory att = attest(ATTESTER_KEY, nft.keyIdFor(alice, salt2), pubkey);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.TokenExists.selector, tokenId));
        vm.prank(alice);
        nft.mint(salt2, pubkey, att);
        assertTrue(nft.isBurned(tokenId));
        assertEq(nft.getKeyId(tokenId), nft.keyIdFor(alice, SALT));
    }

    function test_mint_revertsOnBadPubkey() public {
        bytes[5] memory bad = [
            bytes(""),
            abi.encodePacked(bytes1(0x04), bytes32(uint256(1)), bytes31(uint248(1))), // 64 bytes
            abi.encodePacked(pubkeyFor(1), bytes1(0x00)), // 66 bytes
            abi.encodePacked(bytes1(0x03), bytes32(uint256(1)), bytes32(uint256(2))), // wrong prefix
            abi.encodePacked(bytes1(0x02), bytes32(uint256(1))) // compressed form
        ];
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        for (uint256 i = 0; i < bad.length; i++) {
            bytes memory att = attest(ATTESTER_KEY, keyId, bad[i]);
            vm.expectRevert(PKPNFT.BadPubkey.selector);
            vm.prank(alice);
            nft.mint(SALT, bad[i], att);
        }
    }

    function test_mint_revertsOnWrongSigner() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = attest(OTHER_KEY, nft.keyIdFor(alice, SALT), pubkey);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, vm.addr(OTHER_KEY)));
        vm.prank(alice);
        nft.mint(SALT, pubkey, att);
    }

    /// @dev A new epoch cannot name another attester (NodeSet's keys are written once), so an
    ///      attestation made before stays valid and another key's is refused.
    function test_mint_theAttesterCannotBeRotated() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory att = attest(ATTESTER_KEY, nft.keyIdFor(alice, SALT), pubkey);
        vm.prank(admin);
        nodeSet.setNodes(fixtureNodes(), 2);
        bytes32 digest =
            nodeSet.rootKeysDigest(nodeSet.epoch(), ROOT_ECDSA_KEY, ROOT_BLS_KEY, ROOT_BLS_SHARES, vm.addr(OTHER_KEY));
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = signDigest(NODE_KEY_1, digest);
        sigs[1] = signDigest(NODE_KEY_2, digest);
        vm.expectRevert(NodeSet.KeysChanged.selector);
        nodeSet.recordKeys(ROOT_ECDSA_KEY, ROOT_BLS_KEY, ROOT_BLS_SHARES, vm.addr(OTHER_KEY), sigs);
        assertEq(nodeSet.attester(), vm.addr(ATTESTER_KEY));

        bytes memory other = attest(OTHER_KEY, nft.keyIdFor(alice, SALT), pubkey);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, vm.addr(OTHER_KEY)));
        vm.prank(alice);
        nft.mint(SALT, pubkey, other);
        vm.prank(alice);
        nft.mint(SALT, pubkey, att);
    }

    function test_mint_revertsOnWrongChainId() public {
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        bytes memory pubkey = pubkeyFor(1);
        uint256 chain = block.chainid;
        vm.chainId(chain + 1);
        bytes memory att = attest(ATTESTER_KEY, keyId, pubkey);
        vm.chainId(chain);
        address recovered = recoverOf(nft.attestationDigest(keyId, pubkey), att);
        assertTrue(recovered != vm.addr(ATTESTER_KEY));
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, recovered));
        vm.prank(alice);
        nft.mint(SALT, pubkey, att);
    }

    function test_mint_revertsOnWrongContract() public {
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        bytes memory pubkey = pubkeyFor(1);
        PKPNFT other = new PKPNFT(nodeSet);
        bytes memory att = signDigest(ATTESTER_KEY, other.attestationDigest(keyId, pubkey));
        address recovered = recoverOf(nft.attestationDigest(keyId, pubkey), att);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, recovered));
        vm.prank(alice);
        nft.mint(SALT, pubkey, att);
        // ...but it is valid on the contract it was made for
        vm.prank(alice);
        other.mint(SALT, pubkey, att);
    }

    function test_mint_revertsOnWrongKeyId() public {
        bytes memory pubkey = pubkeyFor(1);
        // attestation made for bob's key id, presented by alice with the same salt
        bytes memory att = attest(ATTESTER_KEY, nft.keyIdFor(bob, SALT), pubkey);
        address recovered = recoverOf(nft.attestationDigest(nft.keyIdFor(alice, SALT), pubkey), att);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, recovered));
        vm.prank(alice);
        nft.mint(SALT, pubkey, att);
    }

    function test_mint_revertsOnWrongPubkey() public {
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        bytes memory att = attest(ATTESTER_KEY, keyId, pubkeyFor(1));
        bytes memory pubkey = pubkeyFor(2);
        address recovered = recoverOf(nft.attestationDigest(keyId, pubkey), att);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, recovered));
        vm.prank(alice);
        nft.mint(SALT, pubkey, att);
    }

    function test_mint_revertsOnBadAttestationLengthOrV() public {
        bytes memory pubkey = pubkeyFor(1);
        bytes memory good = attest(ATTESTER_KEY, nft.keyIdFor(alice, SALT), pubkey);
        bytes memory badV = bytes.concat(good);
        badV[64] = bytes1(uint8(29));
        bytes[4] memory bad = [bytes(""), _slice(good, 64), bytes.concat(good, hex"00"), badV];
        for (uint256 i = 0; i < bad.length; i++) {
            vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, address(0)));
            vm.prank(alice);
            nft.mint(SALT, pubkey, bad[i]);
        }
    }

    function test_mint_revertsWhenRecoveredIsZeroEvenIfAttesterUnset() public {
        // a NodeSet with no root-key record has no attester
        NodeSet fresh = new NodeSet(admin);
        PKPNFT freshNft = new PKPNFT(fresh);
        assertEq(fresh.attester(), address(0));
        bytes memory zeros = abi.encodePacked(bytes32(0), bytes32(0), uint8(27));
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, address(0)));
        vm.prank(alice);
        freshNft.mint(SALT, pubkeyFor(1), zeros);
        // nor does a signature that recovers to nobody pass on the network's contract
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, address(0)));
        vm.prank(alice);
        nft.mint(SALT, pubkeyFor(1), zeros);
    }

    /// @dev Of the two s values that verify (s and n − s), only the low one is accepted.
    function test_mint_revertsOnHighS() public {
        bytes memory pubkey = pubkeyFor(1);
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(ATTESTER_KEY, nft.attestationDigest(nft.keyIdFor(alice, SALT), pubkey));
        bytes memory flipped = highSTwin(v, r, s);
        // ecrecover itself accepts the high-s form
        assertEq(recoverOf(nft.attestationDigest(nft.keyIdFor(alice, SALT), pubkey), flipped), vm.addr(ATTESTER_KEY));
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.BadAttestation.selector, address(0)));
        vm.prank(alice);
        nft.mint(SALT, pubkey, flipped);
        // the low-s original mints
        vm.prank(alice);
        nft.mint(SALT, pubkey, abi.encodePacked(r, s, v));
    }

    // ---- burn ----

    function test_burn_byOwnerKeepsKeyReadable() public {
        uint256 tokenId = mintAs(alice, SALT, G_PUBKEY);
        vm.prank(alice);
        nft.burn(tokenId);

        assertEq(nft.ownerOrZero(tokenId), address(0));
        assertTrue(nft.isBurned(tokenId));
        assertEq(nft.balanceOf(alice), 0);
        assertEq(nft.getPubkey(tokenId), G_PUBKEY);
        assertEq(nft.getKeyId(tokenId), nft.keyIdFor(alice, SALT));
        assertEq(nft.getEthAddress(tokenId), G_ADDRESS);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, tokenId));
        nft.ownerOf(tokenId);
    }

    function test_burn_byApprovedAccount() public {
        uint256 tokenId = mintAs(alice, SALT, pubkeyFor(1));
        vm.prank(alice);
        nft.approve(bob, tokenId);
        vm.prank(bob);
        nft.burn(tokenId);
        assertTrue(nft.isBurned(tokenId));
    }

    function test_burn_byOperator() public {
        uint256 tokenId = mintAs(alice, SALT, pubkeyFor(1));
        vm.prank(alice);
        nft.setApprovalForAll(bob, true);
        vm.prank(bob);
        nft.burn(tokenId);
        assertTrue(nft.isBurned(tokenId));
    }

    function test_burn_revertsForStranger() public {
        uint256 tokenId = mintAs(alice, SALT, pubkeyFor(1));
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InsufficientApproval.selector, bob, tokenId));
        vm.prank(bob);
        nft.burn(tokenId);
        assertEq(nft.ownerOf(tokenId), alice);
    }

    function test_burn_revertsForUnknownAndBurnedToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, uint256(123)));
        vm.prank(alice);
        nft.burn(123);

        uint256 tokenId = mintAs(alice, SALT, pubkeyFor(1));
        vm.prank(alice);
        nft.burn(tokenId);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, tokenId));
        vm.prank(alice);
        nft.burn(tokenId);
    }

    // ---- getters ----

    function test_getters_revertOnUnknownToken() public {
        uint256 tokenId = 42;
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.UnknownToken.selector, tokenId));
        nft.getPubkey(tokenId);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.UnknownToken.selector, tokenId));
        nft.getEthAddress(tokenId);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.UnknownToken.selector, tokenId));
        nft.getKeyId(tokenId);
        assertEq(nft.ownerOrZero(tokenId), address(0));
        assertFalse(nft.isBurned(tokenId));
    }

    function test_transfer_movesOwnership() public {
        uint256 tokenId = mintAs(alice, SALT, pubkeyFor(1));
        vm.prank(alice);
        nft.transferFrom(alice, bob, tokenId);
        assertEq(nft.ownerOrZero(tokenId), bob);
        assertFalse(nft.isBurned(tokenId));
        // the key id stays the one fixed at mint
        assertEq(nft.getKeyId(tokenId), nft.keyIdFor(alice, SALT));
    }

    function _slice(bytes memory b, uint256 len) private pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i = 0; i < len; i++) {
            out[i] = b[i];
        }
    }

    // ---- mint requests: attestations cost their requester something ----

    function test_requestMint_recordsTheRequesterOnce() public {
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        vm.prank(alice);
        nft.requestMint(keyId);
        assertEq(nft.mintRequester(keyId), alice);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.MintAlreadyRequested.selector, keyId));
        nft.requestMint(keyId);
    }

    function test_requestMint_paysTheFee() public {
        vm.prank(admin);
        nft.setMintFee(1 ether);
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        vm.deal(alice, 2 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.MintFeeTooLow.selector, 0.5 ether, 1 ether));
        nft.requestMint{value: 0.5 ether}(keyId);
        vm.prank(alice);
        nft.requestMint{value: 1 ether}(keyId);
        assertEq(nft.mintRequester(keyId), alice);
        assertEq(address(nft).balance, 1 ether);
        vm.prank(admin);
        nft.withdrawFees(payable(bob));
        assertEq(bob.balance, 1 ether);
    }

    function test_onlyTheAdminSetsTheFeeAndWithdraws() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.NotAdmin.selector, alice));
        nft.setMintFee(1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.NotAdmin.selector, alice));
        nft.withdrawFees(payable(alice));
    }

    function test_aMintedKeyIdCannotBeRequestedAgain() public {
        mintAs(alice, SALT, pubkeyFor(3));
        bytes32 keyId = nft.keyIdFor(alice, SALT);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(PKPNFT.MintAlreadyRequested.selector, keyId));
        nft.requestMint(keyId);
    }
}
