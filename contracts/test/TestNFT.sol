// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// An ERC-721 anyone can mint, for access-control condition tests.
contract TestNFT is ERC721 {
    constructor() ERC721("Sigil Test NFT", "STN") {}

    function mint(address to, uint256 tokenId) external {
        _mint(to, tokenId);
    }
}
