// Verifies one real delivery from the hub with the unmodified npm
// `standardwebhooks` package, four ways: as received, with the body
// tampered, with a wrong secret, and received ten minutes late (a replay).
// Input on stdin: {"secret", "wrong_secret", "body_b64", "headers"}.
// Output on stdout: {"as_received", "tampered", "wrong_secret", "late"},
// each "ok" or the library's error message.
import { Webhook } from "standardwebhooks";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (d) => (text += d));
  process.stdin.on("end", () => resolve(text));
}));
const body = Buffer.from(input.body_b64, "base64").toString("utf8");
const check = (secret, payload) => {
  try {
    new Webhook(secret).verify(payload, input.headers);
    return "ok";
  } catch (e) {
    return String(e.message || e);
  }
};
const out = {
  as_received: check(input.secret, body),
  tampered: check(input.secret, body.replace("}", ',"x":1}')),
  wrong_secret: check(input.wrong_secret, body),
};
const realNow = Date.now;
Date.now = () => realNow() + 10 * 60 * 1000;
out.late = check(input.secret, body);
Date.now = realNow;
process.stdout.write(JSON.stringify(out));
