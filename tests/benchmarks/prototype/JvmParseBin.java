// Prototype for the throughput design proposal of tests/benchmarks/README.md ("Where the time
// goes"): the parse stage's per-record work done in the JVM. Each native event is read with
// Jackson's streaming parser (Flink's shaded copy), checked (ids without control characters, a
// finite time stamp), its endpoint's reference edges found, every feature value binned by binary
// search into the endpoint's open window, latency and errors counted, and the raw row's columns
// kept, which is what the Python parse stage does per record today. Single thread, no Flink: the
// cost per event of the work that would move, to set beside PyFlink's hand-over cost.
//
// Usage: java -cp flink-dist.jar:. JvmParseBin EVENTS ENDPOINTS FEATURES REPEATS [fast|jdk]
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Random;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.StreamReadFeature;

public final class JvmParseBin {
    static final long WINDOW_MS = 60_000L;
    static final int BINS = 20;

    static final class Window {
        final long start;
        final long[][] counts;
        long rows, errors;
        double latencySum;
        Window(long start, int features) { this.start = start; this.counts = new long[features][BINS + 2]; }
    }

    static final class Endpoint {
        final double[][] edges;  // per feature, BINS + 1 inner edges of the reference histogram
        Window open;
        final List<Window> closed = new ArrayList<>();
        Endpoint(double[][] edges) { this.edges = edges; }
    }

    // the raw row's columns of the last record (what goes to Parquet)
    static String rawEndpoint, rawRequest;
    static long rawTime;
    static double rawLatency;

    static boolean validId(String s) {
        if (s == null || s.isEmpty() || s.length() > 256) return false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || Character.isSurrogate(c)) return false;
        }
        return true;
    }

    static int bin(double[] edges, double x) {
        int i = Arrays.binarySearch(edges, x);
        if (i < 0) i = -i - 1; else i = (i == edges.length - 1) ? i : i + 1;  // edge value: the bin to its right, the maximum in the last
        return i;  // 0: below the first edge, edges.length: above the last
    }

    static long parseAndBin(JsonFactory factory, byte[] payload, HashMap<String, Endpoint> catalog, double[] row) throws Exception {
        String endpointId = null, requestId = null;
        long ts = Long.MIN_VALUE;
        double latency = Double.NaN;
        int n = 0;
        boolean error = false;
        try (JsonParser p = factory.createParser(payload)) {
            if (p.nextToken() != JsonToken.START_OBJECT) return -1;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.getCurrentName();
                JsonToken t = p.nextToken();
                switch (name) {
                    case "endpoint_id": endpointId = p.getText(); break;
                    case "request_id": requestId = p.getText(); break;
                    case "timestamp": ts = p.getLongValue(); break;
                    case "latency_us": latency = p.getDoubleValue(); break;
                    case "error": error = t != JsonToken.VALUE_NULL; p.skipChildren(); break;
                    case "inputs":  // [[x, ...]] (one row here; a batch gives a row per inner array)
                        while (p.nextToken() == JsonToken.START_ARRAY) {
                            n = 0;
                            while (p.nextToken() != JsonToken.END_ARRAY) {
                                if (n < row.length) row[n] = p.getDoubleValue();
                                n++;
                            }
                        }
                        break;
                    default: p.skipChildren();
                }
            }
        }
        if (!validId(endpointId) || (requestId != null && !validId(requestId)) || ts == Long.MIN_VALUE) return -1;
        Endpoint e = catalog.get(endpointId);
        if (e == null || n != e.edges.length) return -1;
        long start = ts - Math.floorMod(ts, WINDOW_MS);
        Window w = e.open;
        if (w == null || w.start != start) {
            if (w != null) e.closed.add(w);
            w = e.open = new Window(start, e.edges.length);
        }
        for (int f = 0; f < n; f++) {
            double x = row[f];
            if (Double.isNaN(x)) w.counts[f][BINS + 1]++;
            else w.counts[f][bin(e.edges[f], x)]++;
        }
        w.rows++;
        if (error) w.errors++;
        if (!Double.isNaN(latency)) w.latencySum += latency;
        rawEndpoint = endpointId; rawRequest = requestId; rawTime = ts; rawLatency = latency;
        return start;
    }

    public static void main(String[] args) throws Exception {
        int events = Integer.parseInt(args[0]), endpoints = Integer.parseInt(args[1]);
        int features = Integer.parseInt(args[2]), repeats = Integer.parseInt(args[3]);
        Random rng = new Random(1);
        String[] ids = new String[endpoints];
        for (int i = 0; i < endpoints; i++) ids[i] = String.format("%040x", new java.math.BigInteger(160, rng));
        // events as the job benchmark writes them (tests/benchmarks/bench_job.py serialise_events)
        byte[][] payloads = new byte[events][];
        long t0 = 1_700_000_040_000L;
        StringBuilder sb = new StringBuilder(512);
        for (int i = 0; i < events; i++) {
            sb.setLength(0);
            sb.append("{\"endpoint_id\":\"").append(ids[i % endpoints]).append("\",\"timestamp\":")
              .append(t0 + (long) i * 10 * WINDOW_MS / events).append(",\"request_id\":\"r").append(i)
              .append("\",\"inputs\":[[");
            for (int f = 0; f < features; f++) {
                if (f > 0) sb.append(',');
                sb.append(String.format(Locale.ROOT, "%.4f", 0.1 + rng.nextGaussian()));
            }
            sb.append("]],\"outputs\":[").append(rng.nextInt(2)).append("],\"latency_us\":")
              .append(String.format(Locale.ROOT, "%.1f", Math.exp(7 + 0.4 * rng.nextGaussian()))).append('}');
            payloads[i] = sb.toString().getBytes(StandardCharsets.UTF_8);
        }
        long bytes = 0;
        for (byte[] b : payloads) bytes += b.length;
        double[] edges = new double[BINS + 1];  // N(0, 1) reference: 20 equal-width bins over [-3.5, 3.5]
        for (int b = 0; b <= BINS; b++) edges[b] = -3.5 + 7.0 * b / BINS;
        // Jackson's fast decimal-to-double parser (FastDoubleParser, shipped in the same jar): the
        // JDK's Double.parseDouble is most of the cost of 20 numbers per event
        boolean fast = args.length < 5 || !args[4].equals("jdk");
        JsonFactory factory = fast ? JsonFactory.builder().enable(StreamReadFeature.USE_FAST_DOUBLE_PARSER).build()
                                   : new JsonFactory();
        double[] row = new double[features];
        double[] perEvent = new double[repeats];
        for (int r = -1; r < repeats; r++) {  // r = -1: warm-up (JIT), not reported
            HashMap<String, Endpoint> catalog = new HashMap<>();
            for (String id : ids) {
                double[][] e = new double[features][];
                for (int f = 0; f < features; f++) e[f] = edges;
                catalog.put(id, new Endpoint(e));
            }
            long bad = 0, sum = 0;
            long start = System.nanoTime();
            for (byte[] payload : payloads) {
                long w = parseAndBin(factory, payload, catalog, row);
                if (w < 0) bad++; else sum += w;
            }
            long ns = System.nanoTime() - start;
            long counted = 0;
            for (Endpoint e : catalog.values()) {
                for (Window w : e.closed) counted += w.rows;
                if (e.open != null) counted += e.open.rows;
            }
            if (bad != 0 || counted != events) throw new IllegalStateException("counted " + counted + " of " + events + ", bad " + bad);
            if (r >= 0) perEvent[r] = ns / 1000.0 / events;
            if (sum == 42) System.out.print("");  // keeps the loop's result alive
        }
        double[] sorted = perEvent.clone();
        Arrays.sort(sorted);
        System.out.printf(Locale.ROOT, "events=%d bytes_per_event=%.0f endpoints=%d features=%d double_parser=%s repeats=%s median_us_per_event=%.3f%n",
                events, (double) bytes / events, endpoints, features, fast ? "fast" : "jdk", Arrays.toString(perEvent), sorted[repeats / 2]);
    }
}
