// Prototype for the design proposal of moving the window stage's merge and the built-in
// application's numbers into the JVM (a Java operator): at 10,000 endpoints every window fires at
// once and the Python work per endpoint window bounds that burst. Measured here, single thread, no
// Flink, per endpoint window:
//   merge    - the window's pending partials (held as arrays, as a Java operator's keyed state
//              would hold them) merged: their long[] counts summed (bins, counts, nulls,
//              infinities and invalid values per column), the moments of the finite values merged
//              (mean, M2), minimum and maximum, rows/events/errors, first/last time and the latency
//              histogram; the sample is not merged (the benchmark's windows have none);
//   numbers  - what udfs/drift_batch.py windows_numbers computes: TVD, Hellinger, KLD per compared
//              column (udfs/drift.py, MLRun's operations), general drift and the statuses, and the
//              verdict of udfs/verdict.py (merged bins, Pearson's two-sample chi2 with
//              Satterthwaite's correction and the effect floor through the non-central chi2, the
//              binned rank sum, p = min(1, 2 min(p_chi2, p_rank)), effect, shift,
//              Benjamini-Hochberg over the columns, values stored to 4 significant digits);
//   records  - the objects a Java operator would emit per window: general_drift and feature_drift
//              results (value, status, extra_data as maps, as Python's details), the metrics and
//              the per-feature rows (name and numbers).
// Numeric columns only (the benchmark's endpoints): an endpoint with another kind of column is
// refused by the exporter (tests/benchmarks/bench_jvm_window.py), and here too.
// Not here: Flink's state serialisation and timers, categorical columns, the rows' sample, the
// JSON of extra_data, the hand-over of the records to Python's writer.
//
// Merge maps: cached per (endpoint reference, column, n bucket) as udfs/verdict.py MergeMaps
// caches them per (reference, buckets); the cache is emptied at the start of every repeat, so the
// timed numbers step builds each window's maps as Python's batch path (feature_verdict_batch's
// _OneMergeMap: maps made per batch) does.
//
// Usage: java -cp flink-dist.jar:. JvmWindowDrift EXPORT_FILE RESULT_FILE
// Prints "merge|numbers|records ms_per_window_median=X repeats=[...]" (after warm-up passes for
// the JIT of at least 20,000 windows in all, not counted: a long-running operator is warm) and
// writes RESULT_FILE (little-endian float64).
//
// Both file formats (little-endian): the docstring of tests/benchmarks/bench_jvm_window.py.
import java.io.BufferedOutputStream;
import java.io.DataOutputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.apache.commons.math3.distribution.NormalDistribution;
import org.apache.commons.math3.special.Erf;
import org.apache.commons.math3.special.Gamma;

public final class JvmWindowDrift {
    static final int LATENCY_BINS = 602;  // udfs/window.py LATENCY_EDGES.size + 1
    static final double SQRT2 = Math.sqrt(2.0);
    static final int DATA_DRIFT = 0;  // udfs/records.py ResultKindApp.data_drift
    // the standard normal's inverse CDF (commons-math3); no random generator: none is drawn
    static final NormalDistribution NORMAL = new NormalDistribution(null, 0.0, 1.0);

    static double alpha, alphaDetected, minEffect, zeroScaling, minExpected, potential, detected, noiseSigmas;
    static int bucketsPerDoubling;

    // ------------------------------------------------------------------ state

    static final class Partial {
        long rows, events, errors, latencyCount, firstMs, lastMs;
        double latencySum;
        int[] latencyBin;
        long[] latencyCount_;
        long[] ints;  // dense [hist[B], count[C], invalid[C]]: the arrays the operator's state holds
        long[] nullsInfs;  // [nulls[C], infs[C]]
        double[] moments;  // [mean[C], m2[C], min[C], max[C]] of the finite values
    }

    /** Merge map of one column for one n bucket: its groups' first bins and reference rows. */
    static final class ColumnMap {
        final int[] groupStart;  // column-relative first bin of each group, then the width
        final double[] groupRef;
        final double invQ;  // sum over groups of N / r_g (r_g > 0)
        ColumnMap(int[] groupStart, double[] groupRef, double invQ) {
            this.groupStart = groupStart; this.groupRef = groupRef; this.invQ = invQ;
        }
    }

    static final class Endpoint {
        String id;
        int c, b;
        String[] names;
        int[] start, width;
        double[] refCounts, total;
        int p, w;
        int[] refIndex, countIndex, invalidIndex;
        int[][] gather;
        double[][] q;
        double[] refN;
        boolean[] wanted;  // per reference column: compared (the plan's ``tested``)
        double[] floor;    // per reference column: the effect floor d (reference only: cached)
        Partial[] partials;
        final HashMap<Long, ColumnMap> maps = new HashMap<>();  // (column, bucket) -> map
    }

    static final class Merged {
        long rows, events, errors, latencyCount, firstMs = Long.MAX_VALUE, lastMs = Long.MIN_VALUE;
        double latencySum;
        final long[] latency = new long[LATENCY_BINS];
        long[] ints, nullsInfs;
        double[] moments;
    }

    static final class Numbers {
        boolean ok;
        double general, tvdMean, helMean, kldMean, verdictValue;
        int status, verdictStatus;
        double[] tvd, hel, kld, drift, pRaw, p4, effectRaw, effect4, shiftRaw, shift4, n, share;
        int[] colStatus, drifted;
        boolean[] rejected, rejectedDetected;
        long[] windowCount;
        String[] driftedNames;
        double invalidShare;  // NaN: None
    }

    // the records a Java operator would emit (Python: ResultRecord, MetricRecord, FeatureDriftRecord)
    record Result(String endpoint, String name, int kind, int status, double value, long start, long end,
                  Map<String, Object> extra) {}
    record Metric(String endpoint, String name, double value, long start, long end) {}
    record FeatureRow(String endpoint, String feature, long start, long end, double tvd, double hellinger, double kld,
                      Double pValue, Boolean rejected, Double effect, long windowCount, long referenceCount,
                      Double invalidShare) {}

    // ------------------------------------------------------------------ reading

    static String str(ByteBuffer in) {
        byte[] b = new byte[in.getInt()];
        in.get(b);
        return new String(b, StandardCharsets.UTF_8);
    }

    static Endpoint readEndpoint(ByteBuffer in) {
        Endpoint e = new Endpoint();
        e.id = str(in);
        e.c = in.getInt(); e.b = in.getInt();
        e.names = new String[e.c]; e.start = new int[e.c]; e.width = new int[e.c];
        for (int j = 0; j < e.c; j++) { e.names[j] = str(in); e.start[j] = in.getInt(); e.width[j] = in.getInt(); }
        e.refCounts = new double[e.b];
        for (int i = 0; i < e.b; i++) e.refCounts[i] = in.getDouble();
        e.total = new double[e.c];
        for (int j = 0; j < e.c; j++) e.total[j] = in.getDouble();
        e.p = in.getInt(); e.w = in.getInt();
        e.refIndex = new int[e.p]; e.countIndex = new int[e.p]; e.invalidIndex = new int[e.p];
        e.gather = new int[e.p][e.w]; e.q = new double[e.p][e.w]; e.refN = new double[e.p];
        e.wanted = new boolean[e.c];
        for (int i = 0; i < e.p; i++) {
            e.refIndex[i] = in.getInt(); e.countIndex[i] = in.getInt(); e.invalidIndex[i] = in.getInt();
            if (e.invalidIndex[i] < 0) throw new IllegalArgumentException(
                    "endpoint " + e.id + ": a categorical column; the prototype supports numeric columns only");
            for (int k = 0; k < e.w; k++) e.gather[i][k] = in.getInt();
            for (int k = 0; k < e.w; k++) e.q[i][k] = in.getDouble();
            e.refN[i] = in.getDouble();
            if (e.refIndex[i] >= 0) e.wanted[e.refIndex[i]] = true;
        }
        // per reference, as the operator would cache it: d = max(3 / sqrt(N), min_effect)
        e.floor = new double[e.c];
        for (int j = 0; j < e.c; j++) e.floor[j] = Math.max(noiseSigmas / Math.sqrt(e.total[j]), minEffect);
        int nParts = in.getInt();
        e.partials = new Partial[nParts];
        int size = e.b + 2 * e.c;
        for (int k = 0; k < nParts; k++) {
            Partial p = new Partial();
            p.rows = in.getLong(); p.events = in.getLong(); p.errors = in.getLong(); p.latencyCount = in.getLong();
            p.firstMs = in.getLong(); p.lastMs = in.getLong(); p.latencySum = in.getDouble();
            int l = in.getInt();
            p.latencyBin = new int[l]; p.latencyCount_ = new long[l];
            for (int i = 0; i < l; i++) { p.latencyBin[i] = in.getInt(); p.latencyCount_[i] = in.getLong(); }
            p.ints = new long[size];
            int nnz = in.getInt();
            for (int i = 0; i < nnz; i++) { int at = in.getInt(); p.ints[at] = in.getLong(); }
            p.moments = new double[4 * e.c];
            for (int i = 0; i < p.moments.length; i++) p.moments[i] = in.getDouble();
            p.nullsInfs = new long[2 * e.c];
            for (int i = 0; i < p.nullsInfs.length; i++) p.nullsInfs[i] = in.getLong();
            e.partials[k] = p;
        }
        return e;
    }

    // ------------------------------------------------------------------ merge

    /** As Python's merge_bytes: counts added, the moments of the finite values merged pairwise in
     *  order (Chan, Golub and LeVeque 1979, as udfs/accumulator.py merge_moments), minimum and maximum. */
    static Merged merge(Endpoint e) {
        Merged m = new Merged();
        int c = e.c;
        long[] sum = new long[e.b + 2 * c];
        long[] nullsInfs = new long[2 * c];
        double[] mom = new double[4 * c];
        java.util.Arrays.fill(mom, 2 * c, 3 * c, Double.POSITIVE_INFINITY);
        java.util.Arrays.fill(mom, 3 * c, 4 * c, Double.NEGATIVE_INFINITY);
        long[] finite = new long[c];
        for (Partial p : e.partials) {
            double[] pm = p.moments;
            for (int j = 0; j < c; j++) {
                long na = finite[j], nb = p.ints[e.b + j] - p.nullsInfs[c + j];
                long n = na + nb;
                double safe = n > 0 ? n : 1, delta = pm[j] - mom[j];
                double mean = (na * mom[j] + nb * pm[j]) / safe;
                double m2 = (mom[c + j] + pm[c + j]) + delta * delta * ((double) na * nb / safe);
                mom[j] = n > 0 ? mean : 0.0;
                mom[c + j] = n > 0 ? m2 : 0.0;
                finite[j] = n;
                mom[2 * c + j] = Math.min(mom[2 * c + j], pm[2 * c + j]);
                mom[3 * c + j] = Math.max(mom[3 * c + j], pm[3 * c + j]);
            }
            for (int i = 0; i < nullsInfs.length; i++) nullsInfs[i] += p.nullsInfs[i];
            m.rows += p.rows; m.events += p.events; m.errors += p.errors;
            m.latencyCount += p.latencyCount; m.latencySum += p.latencySum;
            if (p.firstMs >= 0) m.firstMs = Math.min(m.firstMs, p.firstMs);
            if (p.lastMs >= 0) m.lastMs = Math.max(m.lastMs, p.lastMs);
            for (int i = 0; i < p.latencyBin.length; i++) m.latency[p.latencyBin[i]] += p.latencyCount_[i];
            long[] x = p.ints;
            for (int i = 0; i < sum.length; i++) sum[i] += x[i];
        }
        m.ints = sum;
        m.nullsInfs = nullsInfs;
        m.moments = mom;
        return m;
    }

    // ------------------------------------------------------------------ special functions

    /**
     * The non-central chi2 CDF, which commons-math3 lacks: the Poisson(lambda/2)-weighted sum of
     * central chi2 CDFs, F = sum_j w_j P(k/2 + j, x/2), w_j = e^-mu mu^j / j!, summed outward from
     * the Poisson mode until the terms fall below 1e-15 of the sum. P is Gamma.regularizedGammaP at
     * the mode only; its neighbours follow from P(a+1, y) = P(a, y) - y^a e^-y / Gamma(a+1) (upward)
     * and P(a-1, y) = P(a, y) + y^(a-1) e^-y / Gamma(a) (downward), which saves a series per term.
     */
    static double ncx2Cdf(double x, double k, double lambda) {
        if (!(x > 0)) return 0.0;
        double y = x / 2, mu = lambda / 2, h = k / 2;
        if (mu == 0) return Gamma.regularizedGammaP(h, y);
        int j0 = (int) Math.floor(mu);
        double a0 = h + j0;
        double w0 = Math.exp(-mu + j0 * Math.log(mu) - Gamma.logGamma(j0 + 1.0));
        double p0 = Gamma.regularizedGammaP(a0, y);
        double t0 = Math.exp(a0 * Math.log(y) - y - Gamma.logGamma(a0 + 1.0));  // y^a0 e^-y / Gamma(a0 + 1)
        double sum = w0 * p0;
        // upward: w and P both fall, so the terms do
        double w = w0, p = p0, t = t0, a = a0;
        for (int j = j0 + 1; ; j++) {
            p = Math.max(p - t, 0.0);
            t = t * y / (a + 1);
            a += 1;
            w = w * mu / j;
            double term = w * p;
            sum += term;
            if (term <= 1e-15 * sum || w == 0) break;
        }
        // downward: P rises towards 1, so the weight bounds the term
        w = w0; p = p0; t = t0; a = a0;
        for (int j = j0 - 1; j >= 0; j--) {
            t = t * a / y;  // y^(a-1) e^-y / Gamma(a)
            a -= 1;
            p = Math.min(p + t, 1.0);
            w = w * (j + 1) / mu;
            sum += w * p;
            if (w <= 1e-15 * sum) break;
        }
        return Math.min(sum, 1.0);
    }

    /** scipy's ndtr: 0.5 + 0.5 erf(x / sqrt 2) near 0, 0.5 erfc(-x / sqrt 2) elsewhere. */
    /**
     * The non-central chi2 survival function for the far tail, where 1 - CDF keeps no digits: the
     * same Poisson mixture of central chi2 tails, each Gamma.regularizedGammaQ (exact to its last
     * digits there), summed outward from the Poisson mode until the weights (upward: Q rises to 1)
     * or the terms (downward: both fall) are below 1e-16 of the sum.
     */
    static double ncx2Sf(double x, double k, double lambda) {
        if (!(x > 0)) return 1.0;
        double y = x / 2, mu = lambda / 2, h = k / 2;
        if (mu == 0) return Gamma.regularizedGammaQ(h, y);
        int j0 = (int) Math.floor(mu);
        double w0 = Math.exp(-mu + j0 * Math.log(mu) - Gamma.logGamma(j0 + 1.0));
        double sum = w0 * Gamma.regularizedGammaQ(h + j0, y);
        double w = w0;
        for (int j = j0 + 1; ; j++) {
            w = w * mu / j;
            sum += w * Gamma.regularizedGammaQ(h + j, y);
            if (w <= 1e-16 * sum || w == 0) break;
        }
        w = w0;
        for (int j = j0 - 1; j >= 0; j--) {
            w = w * (j + 1) / mu;
            double term = w * Gamma.regularizedGammaQ(h + j, y);
            sum += term;
            if (term <= 1e-16 * sum) break;
        }
        return sum;
    }

    static double ndtr(double x) {
        double z = x / SQRT2;
        return Math.abs(z) < 1 / SQRT2 ? 0.5 + 0.5 * Erf.erf(z) : 0.5 * Erf.erfc(-z);
    }

    /** float("{:.4g}".format(x)): the exact binary value rounded half-even to 4 digits, read back. */
    static double four(double x) {
        if (x == 0 || !Double.isFinite(x)) return x;
        return new BigDecimal(x).round(new MathContext(4, RoundingMode.HALF_EVEN)).doubleValue();
    }

    /** udfs/verdict.py n_bucket: floor(2^(floor(k log2 n + 1e-9) / k)), at least 1. */
    static long nBucket(double n) {
        double e = Math.floor(bucketsPerDoubling * (Math.log(Math.max(n, 1.0)) / Math.log(2.0)) + 1e-9)
                / bucketsPerDoubling;
        return Math.max((long) Math.floor(Math.pow(2.0, e)), 1L);
    }

    /** udfs/verdict.py numeric_merge_starts + MergeMap.derive for one column. */
    static ColumnMap columnMap(Endpoint e, int col, long bucket) {
        long key = ((long) col << 40) | bucket;
        ColumnMap hit = e.maps.get(key);
        if (hit != null) return hit;
        double big = e.total[col];
        double threshold = minExpected * big / Math.max(Math.min((double) bucket, big), 1.0);
        int s = e.start[col], width = e.width[col];
        int[] starts = new int[width + 1];
        int groups = 1, last = 0;
        double acc = 0.0;
        for (int j = 0; j < width - 1; j++) {  // greedy left to right: close a group at >= T rows
            acc += e.refCounts[s + j];
            if (acc >= threshold) { starts[groups++] = j + 1; last = j + 1; acc = 0.0; }
        }
        acc += e.refCounts[s + width - 1];
        if (last > 0 && acc < threshold) groups--;  // a short last group joins the one before
        starts[groups] = width;
        int[] groupStart = Arrays.copyOf(starts, groups + 1);
        groupStart[groups] = width;
        double[] ref = new double[groups];
        double invQ = 0.0;
        for (int g = 0; g < groups; g++) {
            double r = 0.0;
            for (int j = groupStart[g]; j < groupStart[g + 1]; j++) r += e.refCounts[s + j];
            ref[g] = r;
            if (r > 0) invQ += big / r;
        }
        ColumnMap m = new ColumnMap(groupStart, ref, invQ);
        e.maps.put(key, m);
        return m;
    }

    // ------------------------------------------------------------------ numbers

    static Numbers numbers(Endpoint e, Merged m) {
        Numbers out = new Numbers();
        int pc = e.p, b = e.b, c = e.c;
        long[] ints = m.ints;
        // planned_window: the non-null count of each compared column; none without a value
        double[] winN = new double[pc];
        for (int i = 0; i < pc; i++) {
            winN[i] = ints[b + e.countIndex[i]];
            if (!(winN[i] > 0)) return out;
        }
        out.tvd = new double[pc]; out.hel = new double[pc]; out.kld = new double[pc]; out.drift = new double[pc];
        out.colStatus = new int[pc]; out.windowCount = new long[pc]; out.share = new double[pc];
        double sumT = 0, sumH = 0, sumK = 0;
        for (int i = 0; i < pc; i++) {
            int[] g = e.gather[i];
            double[] q = e.q[i];
            double abs = 0, bc = 0, kl = 0;
            for (int k = 0; k < e.w; k++) {
                double pk = (g[k] >= 0 ? ints[g[k]] : 0L) / winN[i], qk = q[k];
                abs += Math.abs(pk - qk);
                bc += Math.sqrt(qk * pk);
                // MLRun's symmetric KLD: empty numerator bins dropped, an empty denominator is zero_scaling
                if (pk != 0) kl += pk * Math.log(pk / (qk != 0 ? qk : zeroScaling));
                if (qk != 0) kl += qk * Math.log(qk / (pk != 0 ? pk : zeroScaling));
            }
            out.tvd[i] = abs / 2;
            out.hel[i] = Math.sqrt(Math.max(1 - bc, 0));
            out.kld[i] = kl;
            out.drift[i] = (out.tvd[i] + out.hel[i]) / 2;
            out.colStatus[i] = status(out.drift[i]);
            sumT += out.tvd[i]; sumH += out.hel[i]; sumK += out.kld[i];
            out.windowCount[i] = (long) winN[i];
            long inv = ints[b + c + e.invalidIndex[i]];
            long tot = inv + (long) winN[i];
            out.share[i] = tot != 0 ? (double) inv / tot : Double.NaN;
        }
        out.tvdMean = sumT / pc; out.helMean = sumH / pc; out.kldMean = sumK / pc;
        out.general = (out.tvdMean + out.helMean) / 2;
        out.status = status(out.general);
        long invSum = 0, countSum = 0;
        for (int j = 0; j < c; j++) { countSum += ints[b + j]; invSum += ints[b + c + j]; }
        out.invalidShare = countSum + invSum != 0 ? (double) invSum / (countSum + invSum) : Double.NaN;

        // the verdict, per reference column
        double[] n = new double[c], p = new double[c], effect = new double[c], shift = new double[c];
        boolean[] tested = new boolean[c];
        int m0 = 0;
        for (int j = 0; j < c; j++) {
            int s = e.start[j], width = e.width[j];
            double nj = 0;
            for (int k = 0; k < width; k++) nj += ints[s + k];
            n[j] = nj;
            double big = e.total[j];
            tested[j] = nj > 0 && big > 0 && e.wanted[j];
            shift[j] = Double.NaN;
            p[j] = 1.0;
            if (!tested[j]) continue;
            m0++;
            double fl = e.floor[j];
            // Pearson's two-sample chi2 on the merged groups
            ColumnMap mm = columnMap(e, j, nBucket(nj));
            int groups = mm.groupRef.length;
            double x2 = 0;
            for (int g = 0; g < groups; g++) {
                double wg = 0;
                for (int k = mm.groupStart[g]; k < mm.groupStart[g + 1]; k++) wg += ints[s + k];
                double tot = wg + mm.groupRef[g];
                double d = wg * big - mm.groupRef[g] * nj;
                if (tot > 0) x2 += d * d / (tot * nj * big);
            }
            double df = groups - 1.0;
            double pChi2 = 1.0;
            if (df > 0) {  // Satterthwaite: X2 / a ~ chi2'(df / a, lambda0) under "drift <= d"
                double var = 2 * df + Math.max(mm.invQ - groups * (double) groups - 2.0 * groups + 2, 0.0)
                        / Math.min(nj, big);
                double a = var / (2 * df);
                double lam = nj * big / (nj + big) * fl * fl;
                pChi2 = 1.0 - ncx2Cdf(x2 / a, df / a, lam);
                if (pChi2 < 1e-9) pChi2 = ncx2Sf(x2 / a, df / a, lam);  // as udfs/verdict.py: 1 - F keeps no digits there
                pChi2 = Math.min(Math.max(pChi2, 0.0), 1.0);
            }
            double nEff = nj * big / Math.max(nj + big, 1.0);
            effect[j] = nEff > 0 ? Math.sqrt(Math.max(x2 - df, 0.0) / nEff) : 0.0;
            // binned Wilcoxon-Mann-Whitney, mid-ranks, exact tie correction (whole numbers: exact)
            double cs = 0, sRank = 0, ties = 0;
            for (int k = 0; k < width; k++) {
                double wk = ints[s + k], ck = wk + e.refCounts[s + k];
                cs += ck;
                sRank += wk * (cs - (ck - 1) / 2);
                ties += ck * (ck * ck - 1);
            }
            double mAll = nj + big;
            double v = nj * big / 12 * (mAll + 1 - (mAll > 1 ? ties / (mAll * (mAll - 1)) : 0.0));
            double sE = sRank - nj * (mAll + 1) / 2;
            double pRank = 1.0;
            if (v > 0) {
                double theta = ndtr(fl / SQRT2) - 0.5;
                double z = (Math.abs(sE) - theta * nj * big) / Math.sqrt(v);
                pRank = Math.min(1.0, Erf.erfc(z / SQRT2));
            }
            p[j] = Math.min(1.0, 2.0 * Math.min(pChi2, pRank));
            double nnBig = nj * big;
            if (nnBig > 0) {
                double auc = 0.5 + sE / nnBig, half = 0.5 / nnBig;
                shift[j] = SQRT2 * NORMAL.inverseCumulativeProbability(Math.min(Math.max(auc, half), 1 - half));
            }
        }
        // Benjamini-Hochberg over the tested columns (stable order of the p-values)
        Integer[] order = new Integer[m0];
        for (int j = 0, k = 0; j < c; j++) if (tested[j]) order[k++] = j;
        Arrays.sort(order, (x, y) -> Double.compare(p[x], p[y]));
        int kAlpha = 0, kDetected = 0;
        for (int r = 0; r < m0; r++) {
            double pr = p[order[r]];
            if (pr <= alpha * (r + 1) / m0) kAlpha = r + 1;
            if (pr <= alphaDetected * (r + 1) / m0) kDetected = r + 1;
        }
        boolean[] rej = new boolean[c], rejD = new boolean[c];
        for (int r = 0; r < kAlpha; r++) rej[order[r]] = true;
        for (int r = 0; r < kDetected; r++) rejD[order[r]] = true;
        out.verdictStatus = m0 == 0 ? -1 : kDetected > 0 ? 2 : kAlpha > 0 ? 1 : 0;
        out.verdictValue = m0 > 0 ? (double) kAlpha / m0 : Double.NaN;
        // drifted: the rejected columns by p, then by larger effect (stable)
        Integer[] dr = new Integer[kAlpha];
        for (int r = 0; r < kAlpha; r++) dr[r] = order[r];
        Arrays.sort(dr, (x, y) -> {
            int cmp = Double.compare(p[x], p[y]);
            if (cmp != 0) return cmp;
            cmp = Double.compare(-effect[x], -effect[y]);
            return cmp != 0 ? cmp : Integer.compare(x, y);
        });
        int[] driftedAt = new int[c];
        Arrays.fill(driftedAt, -1);
        out.driftedNames = new String[kAlpha];
        for (int r = 0; r < kAlpha; r++) { driftedAt[dr[r]] = r; out.driftedNames[r] = e.names[dr[r]]; }
        // per compared column, in the plan's order; stored values to 4 significant digits
        out.pRaw = new double[pc]; out.p4 = new double[pc]; out.effectRaw = new double[pc];
        out.effect4 = new double[pc]; out.shiftRaw = new double[pc]; out.shift4 = new double[pc];
        out.n = new double[pc]; out.rejected = new boolean[pc]; out.rejectedDetected = new boolean[pc];
        out.drifted = new int[pc];
        boolean finite = Double.isFinite(out.general + out.tvdMean + out.helMean + out.kldMean);
        for (int i = 0; i < pc; i++) {
            finite &= Double.isFinite(out.drift[i] + out.kld[i]);
            int j = e.refIndex[i];
            if (j < 0 || !tested[j]) {
                out.pRaw[i] = out.p4[i] = out.effectRaw[i] = out.effect4[i] = out.shiftRaw[i] = out.shift4[i] = Double.NaN;
                out.drifted[i] = -1;
                continue;
            }
            out.pRaw[i] = p[j]; out.p4[i] = four(p[j]);
            out.effectRaw[i] = effect[j]; out.effect4[i] = four(effect[j]);
            out.shiftRaw[i] = shift[j]; out.shift4[i] = four(shift[j]);
            out.n[i] = n[j]; out.rejected[i] = rej[j]; out.rejectedDetected[i] = rejD[j];
            out.drifted[i] = driftedAt[j];
            finite &= Double.isFinite(out.p4[i] + out.effect4[i] + out.shift4[i]);
        }
        out.ok = finite;  // as windows_numbers: a number JSON cannot hold leaves the window to Python
        return out;
    }

    static int status(double value) {  // DriftClassifier.status of the value clipped to [0, 1]
        double v = Math.min(Math.max(value, 0.0), 1.0);
        return v >= detected ? 2 : v >= potential ? 1 : 0;
    }

    // ------------------------------------------------------------------ records

    static List<Object> records(Endpoint e, Merged m, Numbers x, long start, long end) {
        List<Object> out = new ArrayList<>(8 + e.p);
        if (!x.ok) return out;
        Map<String, Object> columns = new LinkedHashMap<>();
        for (int i = 0; i < e.p; i++) {
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("kind", "numeric"); c.put("tvd", x.tvd[i]); c.put("hellinger", x.hel[i]); c.put("kld", x.kld[i]);
            c.put("drift", x.drift[i]); c.put("status", x.colStatus[i]); c.put("window_count", x.windowCount[i]);
            c.put("reference_count", (long) e.refN[i]);
            if (!Double.isNaN(x.share[i])) c.put("invalid_share", x.share[i]);
            columns.put(e.names[e.refIndex[i]], c);
        }
        Map<String, Object> metrics = new LinkedHashMap<>();
        metrics.put("tvd_mean", x.tvdMean); metrics.put("hellinger_mean", x.helMean); metrics.put("kld_mean", x.kldMean);
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("name", "general_drift"); details.put("kind", DATA_DRIFT); details.put("value", x.general);
        details.put("status", x.status); details.put("metrics", new LinkedHashMap<>(metrics));
        details.put("columns", columns); details.put("missing_in_window", List.of());
        details.put("missing_in_reference", List.of()); details.put("skipped", Map.of());
        out.add(new Result(e.id, "general_drift", DATA_DRIFT, x.status, x.general, start, end, details));
        if (x.verdictStatus >= 0) {
            Map<String, Object> tests = new LinkedHashMap<>();
            for (int i = 0; i < e.p; i++) {
                if (Double.isNaN(x.pRaw[i])) continue;
                Map<String, Object> t = new LinkedHashMap<>();
                t.put("p_value", x.p4[i]); t.put("rejected", x.rejected[i]); t.put("n", Math.round(x.n[i]));
                t.put("N", Math.round(e.total[e.refIndex[i]])); t.put("effect", x.effect4[i]); t.put("shift", x.shift4[i]);
                tests.put(e.names[e.refIndex[i]], t);
            }
            Map<String, Object> vd = new LinkedHashMap<>();
            vd.put("name", "feature_drift"); vd.put("kind", DATA_DRIFT); vd.put("value", x.verdictValue);
            vd.put("status", x.verdictStatus); vd.put("columns", tests); vd.put("drifted", List.of(x.driftedNames));
            vd.put("alpha", alpha); vd.put("alpha_detected", alphaDetected); vd.put("min_effect", minEffect);
            out.add(new Result(e.id, "feature_drift", DATA_DRIFT, x.verdictStatus, x.verdictValue, start, end, vd));
        }
        out.add(new Metric(e.id, "tvd_mean", x.tvdMean, start, end));
        out.add(new Metric(e.id, "hellinger_mean", x.helMean, start, end));
        out.add(new Metric(e.id, "kld_mean", x.kldMean, start, end));
        if (!Double.isNaN(x.invalidShare)) out.add(new Metric(e.id, "invalid_share", x.invalidShare, start, end));
        for (int i = 0; i < e.p; i++) {
            boolean t = !Double.isNaN(x.pRaw[i]) && x.verdictStatus >= 0;
            out.add(new FeatureRow(e.id, e.names[e.refIndex[i]], start, end, x.tvd[i], x.hel[i], x.kld[i],
                    t ? x.p4[i] : null, t ? x.rejected[i] : null, t ? x.effect4[i] : null, x.windowCount[i],
                    (long) e.refN[i], Double.isNaN(x.share[i]) ? null : x.share[i]));
        }
        return out;
    }

    // ------------------------------------------------------------------ main

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    public static void main(String[] args) throws IOException {
        ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(Paths.get(args[0]))).order(ByteOrder.LITTLE_ENDIAN);
        byte[] magic = new byte[4];
        in.get(magic);
        if (!new String(magic, StandardCharsets.US_ASCII).equals("SDJW") || in.getInt() != 2)
            throw new IllegalArgumentException("not an export of bench_jvm_window (version 2)");
        int endpoints = in.getInt(), repeats = in.getInt();
        alpha = in.getDouble(); alphaDetected = in.getDouble(); minEffect = in.getDouble(); zeroScaling = in.getDouble();
        minExpected = in.getDouble(); potential = in.getDouble(); detected = in.getDouble(); noiseSigmas = in.getDouble();
        bucketsPerDoubling = in.getInt();
        double[][] points = new double[in.getInt()][3];
        for (double[] pt : points) for (int i = 0; i < 3; i++) pt[i] = in.getDouble();
        Endpoint[] eps = new Endpoint[endpoints];
        long partials = 0;
        for (int i = 0; i < endpoints; i++) { eps[i] = readEndpoint(in); partials += eps[i].partials.length; }

        String[] steps = {"merge", "numbers", "records"};
        double[][] ms = new double[3][repeats];
        Merged[] merged = new Merged[endpoints];
        Numbers[] nums = new Numbers[endpoints];
        long sink = 0, mapsBuilt = 0;
        // the JIT's warm-up, not counted: whole passes over the windows, at least 20,000 windows in all
        int warm = Math.max(1, (20_000 + endpoints - 1) / endpoints);
        for (int r = -warm; r < repeats; r++) {
            for (Endpoint e : eps) e.maps.clear();  // maps built in the timed step, as Python's batch does
            long t0 = System.nanoTime();
            for (int i = 0; i < endpoints; i++) merged[i] = merge(eps[i]);
            long t1 = System.nanoTime();
            for (int i = 0; i < endpoints; i++) nums[i] = numbers(eps[i], merged[i]);
            long t2 = System.nanoTime();
            long startMs = 1_764_158_400_000L + 60_000L * (r + warm);
            for (int i = 0; i < endpoints; i++) sink += records(eps[i], merged[i], nums[i], startMs, startMs + 60_000L).size();
            long t3 = System.nanoTime();
            if (r >= 0) {
                ms[0][r] = (t1 - t0) / 1e6 / endpoints;
                ms[1][r] = (t2 - t1) / 1e6 / endpoints;
                ms[2][r] = (t3 - t2) / 1e6 / endpoints;
            }
            mapsBuilt = 0;
            for (Endpoint e : eps) mapsBuilt += e.maps.size();
        }
        System.out.printf(Locale.ROOT, "jvm: %d windows, %d partials, %d repeats after %d warm-up passes, %d merge maps "
                + "built per repeat (per column and n bucket), records made %d%n", endpoints, partials, repeats, warm,
                mapsBuilt, sink);
        for (int s = 0; s < 3; s++) {
            StringBuilder b = new StringBuilder();
            for (int r = 0; r < repeats; r++) b.append(r == 0 ? "" : ",").append(String.format(Locale.ROOT, "%.5f", ms[s][r]));
            System.out.printf(Locale.ROOT, "%s ms_per_window_median=%.6f repeats=[%s]%n", steps[s], median(ms[s]), b);
        }
        try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(new FileOutputStream(args[1]), 1 << 20))) {
            ByteBuffer buf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            java.util.function.DoubleConsumer put = v -> {
                try { buf.clear(); buf.putDouble(v); out.write(buf.array()); } catch (IOException ex) { throw new RuntimeException(ex); }
            };
            for (double[] pt : points) put.accept(ncx2Cdf(pt[0], pt[1], pt[2]));
            for (int i = 0; i < endpoints; i++) {
                Numbers x = nums[i];
                Endpoint e = eps[i];
                put.accept(x.ok ? 1 : 0);
                put.accept(x.ok ? e.p : 0);
                if (!x.ok) {
                    for (int k = 0; k < 7; k++) put.accept(Double.NaN);
                    continue;
                }
                for (double v : new double[]{x.general, x.status, x.tvdMean, x.helMean, x.kldMean, x.verdictValue,
                        x.verdictStatus}) put.accept(v);
                for (int k = 0; k < e.p; k++) {
                    for (double v : new double[]{x.tvd[k], x.hel[k], x.kld[k], x.drift[k], x.colStatus[k], x.pRaw[k],
                            x.p4[k], x.rejected[k] ? 1 : 0, x.rejectedDetected[k] ? 1 : 0, x.effectRaw[k], x.effect4[k],
                            x.shiftRaw[k], x.shift4[k], x.n[k], x.windowCount[k], x.share[k], x.drifted[k]}) put.accept(v);
                }
            }
            for (int i = 0; i < endpoints; i++) for (double v : merged[i].moments) put.accept(v);
        }
    }
}
