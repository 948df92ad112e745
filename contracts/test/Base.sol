// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The subset of forge's cheatcodes the Sigil contract tests use.
interface Vm {
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function expectRevert() external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert(bytes calldata revertData) external;
    function expectEmit() external;
    function expectEmit(address emitter) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter) external;
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function deal(address account, uint256 newBalance) external;
    function chainId(uint256 newChainId) external;
    function warp(uint256 newTimestamp) external;
    function etch(address target, bytes calldata newRuntimeBytecode) external;
    function label(address account, string calldata newLabel) external;
}

/// @notice Minimal test base: the cheatcode handle and assertions that revert with a message.
abstract contract Base {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    /// @dev The secp256k1 group order n: (r, n − s, v flipped) verifies wherever (r, s, v) does.
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    /// @dev The high-s twin of the signature `vm.sign` returned as (v, r, s): r ‖ (n − s) ‖ v',
    ///      v' the other recovery id.
    function highSTwin(uint8 v, bytes32 r, bytes32 s) internal pure returns (bytes memory) {
        return abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    function fail(string memory message) internal pure {
        revert(message);
    }

    function assertTrue(bool condition) internal pure {
        if (!condition) fail("assertion failed: expected true");
    }

    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) fail(message);
    }

    function assertFalse(bool condition) internal pure {
        if (condition) fail("assertion failed: expected false");
    }

    function assertEq(bool a, bool b) internal pure {
        if (a != b) fail(string.concat("assertEq(bool) failed: ", _str(a), " != ", _str(b)));
    }

    function assertEq(uint256 a, uint256 b) internal pure {
        if (a != b) fail(string.concat("assertEq(uint) failed: ", _str(a), " != ", _str(b)));
    }

    function assertEq(uint256 a, uint256 b, string memory message) internal pure {
        if (a != b) fail(string.concat(message, ": ", _str(a), " != ", _str(b)));
    }

    function assertEq(address a, address b) internal pure {
        if (a != b) fail(string.concat("assertEq(address) failed: ", _str(a), " != ", _str(b)));
    }

    function assertEq(bytes32 a, bytes32 b) internal pure {
        if (a != b) fail(string.concat("assertEq(bytes32) failed: ", _str(a), " != ", _str(b)));
    }

    function assertEq(bytes memory a, bytes memory b) internal pure {
        if (keccak256(a) != keccak256(b)) fail(string.concat("assertEq(bytes) failed: ", _str(a), " != ", _str(b)));
    }

    function assertEq(string memory a, string memory b) internal pure {
        if (keccak256(bytes(a)) != keccak256(bytes(b))) {
            fail(string.concat("assertEq(string) failed: '", a, "' != '", b, "'"));
        }
    }

    // ---- formatting ----

    function _str(bool v) private pure returns (string memory) {
        return v ? "true" : "false";
    }

    function _str(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        uint256 len;
        for (uint256 t = v; t != 0; t /= 10) {
            len++;
        }
        bytes memory out = new bytes(len);
        for (; v != 0; v /= 10) {
            // casting to 'uint8' is safe because 48 + a decimal digit is below 256
            // forge-lint: disable-next-line(unsafe-typecast)
            out[--len] = bytes1(uint8(48 + v % 10));
        }
        return string(out);
    }

    function _str(address v) private pure returns (string memory) {
        return _str(abi.encodePacked(v));
    }

    function _str(bytes32 v) private pure returns (string memory) {
        return _str(abi.encodePacked(v));
    }

    function _str(bytes memory v) private pure returns (string memory) {
        bytes16 hexdigits = "0123456789abcdef";
        bytes memory out = new bytes(2 + v.length * 2);
        out[0] = "0";
        out[1] = "x";
        for (uint256 i = 0; i < v.length; i++) {
            out[2 + 2 * i] = hexdigits[uint8(v[i]) >> 4];
            out[3 + 2 * i] = hexdigits[uint8(v[i]) & 0x0f];
        }
        return string(out);
    }
}
