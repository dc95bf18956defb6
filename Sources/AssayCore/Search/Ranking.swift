/// Verifier ensembles by mean rank (Ma et al. 2025): verifiers' score scales differ, so
/// raw scores are never averaged; each verifier ranks the candidates (1 = best, ties share
/// the mean of their ranks), and the candidate with the lowest mean rank wins.
public enum Ranking {
    /// Ranks of `scores` (higher score = better = lower rank), ties averaged.
    public static func ranks(_ scores: [Double]) -> [Double] {
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var ranks = [Double](repeating: 0, count: scores.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let shared = Double(i + j + 2) / 2
            for k in i...j { ranks[order[k]] = shared }
            i = j + 1
        }
        return ranks
    }

    /// Mean rank of each candidate across verifiers; `scoresByVerifier[v][c]`.
    public static func meanRanks(_ scoresByVerifier: [[Double]]) -> [Double] {
        guard let count = scoresByVerifier.first?.count else { return [] }
        var sum = [Double](repeating: 0, count: count)
        for scores in scoresByVerifier {
            for (c, r) in ranks(scores).enumerated() { sum[c] += r }
        }
        return sum.map { $0 / Double(scoresByVerifier.count) }
    }

    /// Index of the best candidate: lowest mean rank, then higher first-verifier score,
    /// then lower index (deterministic).
    public static func best(meanRanks: [Double], primaryScores: [Double]) -> Int? {
        meanRanks.indices.min { a, b in
            if meanRanks[a] != meanRanks[b] { return meanRanks[a] < meanRanks[b] }
            if primaryScores[a] != primaryScores[b] { return primaryScores[a] > primaryScores[b] }
            return a < b
        }
    }
}
