"""Auctions with exact incentive compatibility: menus for one bidder (the taxation principle), the LP
reference for a finite type set, and affine-maximizer auctions for several bidders (docs/auctions.md)."""
