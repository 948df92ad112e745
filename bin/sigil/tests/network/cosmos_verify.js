// Checks a signed Cosmos SDK transaction with CosmJS, as a wallet or a chain's ante handler
// would: `node cosmos_verify.js TX_BASE64 CHAIN_ID ACCOUNT_NUMBER PREFIX`. Prints one JSON
// object: the signer's address (from the public key in the AuthInfo), the sign mode, the message
// decoded, and whether the signature verifies over the SIGN_MODE_DIRECT sign bytes.
const { decodePubkey, makeSignBytes, makeSignDoc } = require("@cosmjs/proto-signing");
const { pubkeyToAddress } = require("@cosmjs/amino");
const { Secp256k1, Secp256k1Signature, sha256 } = require("@cosmjs/crypto");
const { fromBase64 } = require("@cosmjs/encoding");
const { TxRaw, TxBody, AuthInfo } = require("cosmjs-types/cosmos/tx/v1beta1/tx");
const { MsgSend } = require("cosmjs-types/cosmos/bank/v1beta1/tx");

(async () => {
  const [txBase64, chainId, accountNumber, prefix] = process.argv.slice(2);
  const raw = TxRaw.decode(fromBase64(txBase64));
  const authInfo = AuthInfo.decode(raw.authInfoBytes);
  const body = TxBody.decode(raw.bodyBytes);
  const signer = authInfo.signerInfos[0];
  const pubkey = decodePubkey(signer.publicKey);
  const address = pubkeyToAddress(pubkey, prefix);
  const signBytes = makeSignBytes(makeSignDoc(raw.bodyBytes, raw.authInfoBytes, chainId, BigInt(accountNumber)));
  const signature = Secp256k1Signature.fromFixedLength(raw.signatures[0]);
  const verified = await Secp256k1.verifySignature(signature, sha256(signBytes), fromBase64(pubkey.value));
  const message = body.messages[0];
  const send = message.typeUrl === "/cosmos.bank.v1beta1.MsgSend" ? MsgSend.decode(message.value) : null;
  console.log(JSON.stringify({
    address,
    signMode: signer.modeInfo.single.mode,
    sequence: signer.sequence.toString(),
    typeUrl: message.typeUrl,
    from: send && send.fromAddress,
    to: send && send.toAddress,
    amount: send && send.amount.map((c) => `${c.amount}${c.denom}`),
    memo: body.memo,
    verified,
  }));
})().catch((e) => {
  console.log(JSON.stringify({ error: String(e && e.message ? e.message : e) }));
  process.exit(1);
});
