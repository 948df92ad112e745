// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Signatures
/// @notice Recovery of the 65-byte secp256k1 signatures Sigil's nodes and attester make:
///         r ‖ s ‖ v over a raw 32-byte digest (no EIP-191 prefix), v 27/28 (or 0/1), low s.
library Signatures {
    /// @notice Half the secp256k1 group order: the largest s accepted. Of the two valid s values
    ///         of a signature (s and n − s) only the low one counts, so a signature cannot be
    ///         turned into a second valid one for the same digest.
    uint256 internal constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @notice The signer of `digest`, or address(0) when `sig` is not 65 bytes, its v is not
    ///         27/28 (or 0/1), its s is above `HALF_ORDER`, or ecrecover finds no signer.
    function recover(bytes32 digest, bytes calldata sig) internal pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (v < 27) v += 27;
        if (v != 27 && v != 28) return address(0);
        if (uint256(s) > HALF_ORDER) return address(0);
        return ecrecover(digest, v, r, s);
    }
}
