"""SM2 with SM3 through PyPI's gmssl, unmodified: what a departmental system
written in Python does to sign a submission and to check a delivery
(tests/e2e/tests/e2e/gm.rs runs it).

  gm.py sign   <private hex> <public hex 128> <file>   -> the signature, hex r||s
  gm.py verify <public hex 128> <signature hex> <file> -> "ok" or "bad"
  gm.py sm3    <file>                                  -> SM3 of the file, hex

gmssl signs and verifies with the default distinguishing id
1234567812345678, as the hub does.
"""

import sys

from gmssl import func, sm2, sm3


def main():
    cmd = sys.argv[1]
    if cmd == "sign":
        private, public, path = sys.argv[2:5]
        data = open(path, "rb").read()
        print(sm2.CryptSM2(private_key=private, public_key=public).sign_with_sm3(data))
    elif cmd == "verify":
        public, signature, path = sys.argv[2:5]
        data = open(path, "rb").read()
        good = sm2.CryptSM2(private_key=None, public_key=public).verify_with_sm3(signature, data)
        print("ok" if good else "bad")
    elif cmd == "sm3":
        data = open(sys.argv[2], "rb").read()
        print(sm3.sm3_hash(func.bytes_to_list(data)))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
