// Every test file runs with the crypto backend Sesame itself would choose (SESAME_CRYPTO, else
// libsodium when it loads): loading the net layer's selector installs it in the core, also for
// files that import only the protocol core. The `node-crypto` project sets SESAME_CRYPTO=node.
import '../src/net/crypto-backend.js';
