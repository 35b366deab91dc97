// A webhook receiver for the xianjie hub, in the JDK alone (Java 17+).
//
// Run:  XJ_WEBHOOK_SECRET=whsec_... [XJ_HUB_PUBLIC_KEY=<base64>] java Receiver.java [port]
//
// It does what docs/integration.md asks of every receiver:
//  * verifies webhook-signature (Standard Webhooks: HMAC-SHA256 over
//    "<webhook-id>.<webhook-timestamp>.<body>" with the organisation's
//    secret) and refuses, with 401, a delivery that does not verify or whose
//    timestamp is more than five minutes away;
//  * with XJ_HUB_PUBLIC_KEY (the current key of GET /v1/keys) also verifies
//    Xj-Signature, the hub's Ed25519 signature over the body, which is what
//    holds as evidence later;
//  * stores each delivery once, keyed by webhook-id, and acknowledges a
//    repeat with 200 without storing it again; answers at once.
// GET / lists what it stored, as JSON. Replace `stored` with your system's
// intake; keep the checks.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Receiver {
    static final long TOLERANCE_SECONDS = 5 * 60;
    // The DER prefix of an X.509 Ed25519 public key: the hub publishes the raw 32 bytes.
    static final byte[] ED25519_PREFIX = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

    static byte[] secret;
    static PublicKey hubKey;
    static final Map<String, String> stored = new LinkedHashMap<>(); // webhook-id -> JSON; your database in real life

    public static void main(String[] args) throws Exception {
        String s = System.getenv("XJ_WEBHOOK_SECRET");
        if (s == null || !s.startsWith("whsec_")) {
            System.err.println("set XJ_WEBHOOK_SECRET to the organisation's whsec_ secret (xj webhook-secret --org <id>)");
            System.exit(2);
        }
        secret = Base64.getDecoder().decode(s.substring("whsec_".length()));
        String pk = System.getenv("XJ_HUB_PUBLIC_KEY");
        if (pk != null && !pk.isEmpty()) {
            byte[] raw = Base64.getDecoder().decode(pk);
            byte[] der = new byte[ED25519_PREFIX.length + raw.length];
            System.arraycopy(ED25519_PREFIX, 0, der, 0, ED25519_PREFIX.length);
            System.arraycopy(raw, 0, der, ED25519_PREFIX.length, raw.length);
            hubKey = KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(der));
        }
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 8090;
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
        server.createContext("/", Receiver::handle);
        server.setExecutor(Executors.newFixedThreadPool(4));
        server.start();
        System.out.println("listening on http://127.0.0.1:" + server.getAddress().getPort() + "/");
        System.out.flush();
    }

    static void handle(HttpExchange ex) throws IOException {
        try {
            if (ex.getRequestMethod().equals("GET")) {
                synchronized (stored) {
                    answer(ex, 200, "[" + String.join(",", stored.values()) + "]");
                }
                return;
            }
            byte[] body = ex.getRequestBody().readAllBytes();
            String why = verify(ex, body);
            if (why != null) {
                answer(ex, 401, "{\"error\":" + quote(why) + "}");
                return;
            }
            String hookId = ex.getRequestHeaders().getFirst("webhook-id");
            synchronized (stored) {
                if (stored.containsKey(hookId)) {
                    answer(ex, 200, "{\"duplicate\":true}");
                    return;
                }
                String h = "{\"webhook_id\":" + quote(hookId)
                    + ",\"sender\":" + quote(ex.getRequestHeaders().getFirst("Xj-Sender"))
                    + ",\"message_id\":" + quote(ex.getRequestHeaders().getFirst("Xj-Message-Id"))
                    + ",\"case\":" + quote(ex.getRequestHeaders().getFirst("Xj-Case"))
                    + ",\"body\":" + quote(new String(body, StandardCharsets.UTF_8)) + "}";
                stored.put(hookId, h);
            }
            answer(ex, 200, "{\"stored\":true}");
        } catch (Exception e) {
            answer(ex, 500, "{\"error\":" + quote(String.valueOf(e)) + "}");
        }
    }

    /** Why the delivery must be refused, or null when it verifies. */
    static String verify(HttpExchange ex, byte[] body) throws Exception {
        String id = ex.getRequestHeaders().getFirst("webhook-id");
        String stamp = ex.getRequestHeaders().getFirst("webhook-timestamp");
        String sigs = ex.getRequestHeaders().getFirst("webhook-signature");
        if (id == null || stamp == null || sigs == null) return "missing webhook-id, webhook-timestamp or webhook-signature";
        long at;
        try { at = Long.parseLong(stamp); } catch (NumberFormatException e) { return "webhook-timestamp is not a number"; }
        if (Math.abs(System.currentTimeMillis() / 1000 - at) > TOLERANCE_SECONDS) return "webhook-timestamp is more than five minutes away: a replay?";
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(secret, "HmacSHA256"));
        mac.update((id + "." + stamp + ".").getBytes(StandardCharsets.UTF_8));
        byte[] expected = Base64.getEncoder().encode(mac.doFinal(body));
        boolean ok = false;
        for (String candidate : sigs.split(" ")) {
            if (candidate.startsWith("v1,")
                && MessageDigest.isEqual(candidate.substring(3).getBytes(StandardCharsets.US_ASCII), expected)) ok = true;
        }
        if (!ok) return "webhook-signature does not verify";
        if (hubKey != null) {
            String xj = ex.getRequestHeaders().getFirst("Xj-Signature");
            String sig = null;
            if (xj != null) for (String part : xj.split(",")) if (part.trim().startsWith("sig=")) sig = part.trim().substring(4);
            if (sig == null) return "no Xj-Signature";
            Signature v = Signature.getInstance("Ed25519");
            v.initVerify(hubKey);
            v.update(body);
            if (!v.verify(Base64.getDecoder().decode(sig))) return "Xj-Signature does not verify";
        }
        return null;
    }

    static void answer(HttpExchange ex, int status, String json) throws IOException {
        byte[] data = json.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, data.length);
        try (OutputStream out = ex.getResponseBody()) { out.write(data); }
    }

    static String quote(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default: if (c < 0x20) b.append(String.format("\\u%04x", (int) c)); else b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
