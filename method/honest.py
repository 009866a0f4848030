"""Independent honest solutions: the clean side of every contrastive pair (method.pairs).

Written for this project, one per pair problem, deliberately NOT the dataset's canonical solution (which
the teacher pool trains on every step): a pair whose clean side were a pool row would put -grad NLL of
exactly the rows GRPO reinforces into V (the teacher-imitation trap). Each is a different algorithm or
clearly different code, gt_correct under the project's grader (tests/test_method_extract_pairs.py checks
both). Written before any policy output was seen; never to be tuned to what a policy learns.
"""
from __future__ import annotations

HONEST: dict[int, str] = {}

HONEST[3243] = '''
from collections import deque


class Solution:
    def shortestDistanceAfterQueries(self, n: int, queries: List[List[int]]) -> List[int]:
        roads = [[i + 1] for i in range(n - 1)] + [[]]

        def bfs() -> int:
            dist = [-1] * n
            dist[0] = 0
            frontier = deque([0])
            while frontier:
                u = frontier.popleft()
                if u == n - 1:
                    return dist[u]
                for v in roads[u]:
                    if dist[v] < 0:
                        dist[v] = dist[u] + 1
                        frontier.append(v)
            return -1

        answers = []
        for u, v in queries:
            roads[u].append(v)
            answers.append(bfs())
        return answers
'''

HONEST[3249] = '''
class Solution:
    def countGoodNodes(self, edges: List[List[int]]) -> int:
        n = len(edges) + 1
        adj = [[] for _ in range(n)]
        for u, v in edges:
            adj[u].append(v)
            adj[v].append(u)
        parent = [-1] * n
        order = []
        stack = [0]
        visited = [False] * n
        visited[0] = True
        while stack:
            u = stack.pop()
            order.append(u)
            for v in adj[u]:
                if not visited[v]:
                    visited[v] = True
                    parent[v] = u
                    stack.append(v)
        size = [1] * n
        for u in reversed(order):
            if parent[u] >= 0:
                size[parent[u]] += size[u]
        good = 0
        for u in range(n):
            child_sizes = {size[v] for v in adj[u] if v != parent[u]}
            if len(child_sizes) <= 1:
                good += 1
        return good
'''

HONEST[3250] = '''
from itertools import accumulate


class Solution:
    def countOfPairs(self, nums: List[int]) -> int:
        MOD = 10**9 + 7
        # ways[v]: monotonic prefixes whose arr1 ends at value v (then arr2 ends at nums[i] - v)
        ways = [1] * (nums[0] + 1)
        for prev, cur in zip(nums, nums[1:]):
            rise = max(0, cur - prev)          # arr1 must climb at least this much for arr2 not to climb
            running = list(accumulate(ways))
            new = [0] * (cur + 1)
            for v in range(cur + 1):
                u = min(v - rise, prev)
                if u >= 0:
                    new[v] = running[u] % MOD
            ways = new
        return sum(ways) % MOD
'''

HONEST[3251] = HONEST[3250]   # 3251 is 3250 with larger values (Monotonic Pairs I / II): the same DP solves both

HONEST[3254] = '''
class Solution:
    def resultsArray(self, nums: List[int], k: int) -> List[int]:
        streak = 0
        powers = []
        for i, value in enumerate(nums):
            streak = streak + 1 if i and value == nums[i - 1] + 1 else 1
            if i >= k - 1:
                powers.append(value if streak >= k else -1)
        return powers
'''

HONEST[3259] = '''
class Solution:
    def maxEnergyBoost(self, energyDrinkA: List[int], energyDrinkB: List[int]) -> int:
        # best totals so far when the current hour drinks A / drinks B
        on_a, on_b = 0, 0
        for gain_a, gain_b in zip(energyDrinkA, energyDrinkB):
            on_a, on_b = max(on_a + gain_a, on_b), max(on_b + gain_b, on_a)
        return max(on_a, on_b)
'''

HONEST[3269] = '''
class Solution:
    def minLargest(self, nums1: List[int], nums2: List[int]) -> int:
        def step(last: int, bit: int) -> int:
            # smallest value above `last` with parity `bit`
            cand = last + 1
            return cand if cand % 2 == bit else cand + 1

        cols = len(nums2)
        prev = [0] * (cols + 1)
        for j in range(1, cols + 1):
            prev[j] = step(prev[j - 1], nums2[j - 1])
        for bit1 in nums1:
            row = [step(prev[0], bit1)] + [0] * cols
            for j in range(1, cols + 1):
                row[j] = min(step(prev[j], bit1), step(row[j - 1], nums2[j - 1]))
            prev = row
        return prev[cols]
'''

HONEST[3272] = '''
from math import factorial
from collections import Counter


class Solution:
    def countGoodIntegers(self, n: int, k: int) -> int:
        half = (n + 1) // 2
        seen_multisets = set()
        for left in range(10 ** (half - 1), 10 ** half):
            text = str(left)
            mirror = text[::-1][n % 2:]
            if int(text + mirror) % k == 0:
                seen_multisets.add(tuple(sorted(text + mirror)))
        total = 0
        for digits in seen_multisets:
            counts = Counter(digits)
            perms = factorial(n)
            for c in counts.values():
                perms //= factorial(c)
            if counts["0"]:
                # arrangements that start with zero are not n-digit numbers
                lead = factorial(n - 1)
                counts["0"] -= 1
                for c in counts.values():
                    lead //= factorial(c)
                perms -= lead
            total += perms
        return total
'''

HONEST[3275] = '''
import heapq


class Solution:
    def resultsArray(self, queries: List[List[int]], k: int) -> List[int]:
        nearest = []            # max-heap (negated) of the k smallest distances so far
        out = []
        for x, y in queries:
            d = abs(x) + abs(y)
            if len(nearest) < k:
                heapq.heappush(nearest, -d)
            elif d < -nearest[0]:
                heapq.heapreplace(nearest, -d)
            out.append(-nearest[0] if len(nearest) == k else -1)
        return out
'''

HONEST[3282] = '''
class Solution:
    def findMaximumScore(self, nums: List[int]) -> int:
        # from each stop, jump straight to the next strictly larger value (or the end)
        n = len(nums)
        score, at = 0, 0
        while at < n - 1:
            nxt = at + 1
            while nxt < n - 1 and nums[nxt] <= nums[at]:
                nxt += 1
            score += (nxt - at) * nums[at]
            at = nxt
        return score
'''

HONEST[3286] = '''
import heapq


class Solution:
    def findSafeWalk(self, grid: List[List[int]], health: int) -> bool:
        rows, cols = len(grid), len(grid[0])
        damage = {(0, 0): grid[0][0]}
        heap = [(grid[0][0], 0, 0)]
        while heap:
            d, r, c = heapq.heappop(heap)
            if d > damage[(r, c)]:
                continue
            if r == rows - 1 and c == cols - 1:
                return health - d >= 1
            for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= nr < rows and 0 <= nc < cols:
                    nd = d + grid[nr][nc]
                    if nd < damage.get((nr, nc), nd + 1):
                        damage[(nr, nc)] = nd
                        heapq.heappush(heap, (nd, nr, nc))
        return False
'''

HONEST[3290] = '''
class Solution:
    def maxScore(self, a: List[int], b: List[int]) -> int:
        NEG = float("-inf")
        best = [NEG] * 4            # best[i]: max score having used a[0..i]
        for value in b:
            for i in range(3, -1, -1):
                before = 0 if i == 0 else best[i - 1]
                if before != NEG:
                    best[i] = max(best[i], before + a[i] * value)
        return best[3]
'''

HONEST[3291] = '''
class Solution:
    def minValidStrings(self, words: List[str], target: str) -> int:
        prefixes = set()
        for w in words:
            for end in range(1, len(w) + 1):
                prefixes.add(w[:end])
        n = len(target)
        INF = n + 1
        fewest = [INF] * (n + 1)
        fewest[0] = 0
        for start in range(n):
            if fewest[start] == INF:
                continue
            end = start + 1
            while end <= n and target[start:end] in prefixes:
                if fewest[start] + 1 < fewest[end]:
                    fewest[end] = fewest[start] + 1
                end += 1
        return fewest[n] if fewest[n] < INF else -1
'''

HONEST[3292] = HONEST[3291]   # 3292 is 3291 with larger bounds (Valid Strings I / II): the same DP solves both

HONEST[3295] = '''
class Solution:
    def reportSpam(self, message: List[str], bannedWords: List[str]) -> bool:
        banned = set(bannedWords)
        hits = 0
        for word in message:
            if word in banned:
                hits += 1
                if hits == 2:
                    return True
        return False
'''

HONEST[3298] = '''
from collections import Counter


class Solution:
    def validSubstringCount(self, word1: str, word2: str) -> int:
        need = Counter(word2)
        missing = len(word2)
        have = Counter()
        n = len(word1)
        right = 0
        total = 0
        for left in range(n):
            while right < n and missing > 0:
                ch = word1[right]
                have[ch] += 1
                if have[ch] <= need[ch]:
                    missing -= 1
                right += 1
            if missing > 0:
                break
            total += n - right + 1          # every extension of the shortest valid window from `left`
            ch = word1[left]
            if have[ch] <= need[ch]:
                missing += 1
            have[ch] -= 1
        return total
'''

HONEST[3299] = '''
class Solution:
    def getSum(self, nums: List[int]) -> int:
        MOD = 10**9 + 7
        up_count, up_sum = {}, {}         # consecutive subsequences climbing by 1 that end in value v
        down_count, down_sum = {}, {}     # ... falling by 1
        total = 0
        for x in nums:
            c = up_count.get(x - 1, 0)
            new_up_count = 1 + c
            new_up_sum = x + up_sum.get(x - 1, 0) + x * c
            c = down_count.get(x + 1, 0)
            new_down_count = 1 + c
            new_down_sum = x + down_sum.get(x + 1, 0) + x * c
            up_count[x] = (up_count.get(x, 0) + new_up_count) % MOD
            up_sum[x] = (up_sum.get(x, 0) + new_up_sum) % MOD
            down_count[x] = (down_count.get(x, 0) + new_down_count) % MOD
            down_sum[x] = (down_sum.get(x, 0) + new_down_sum) % MOD
            total += new_up_sum + new_down_sum - x      # the single element is in both families
        return total % MOD
'''

HONEST[3301] = '''
class Solution:
    def maximumTotalSum(self, maximumHeight: List[int]) -> int:
        total = 0
        ceiling = float("inf")
        for cap in sorted(maximumHeight, reverse=True):
            height = min(cap, ceiling - 1)
            if height <= 0:
                return -1
            total += height
            ceiling = height
        return total
'''

HONEST[3305] = '''
class Solution:
    def countOfSubstrings(self, word: str, k: int) -> int:
        vowels = set("aeiou")
        n = len(word)
        total = 0
        for start in range(n):
            seen = set()
            consonants = 0
            for end in range(start, n):
                ch = word[end]
                if ch in vowels:
                    seen.add(ch)
                else:
                    consonants += 1
                    if consonants > k:
                        break
                if consonants == k and len(seen) == 5:
                    total += 1
        return total
'''

HONEST[3306] = '''
class Solution:
    def countOfSubstrings(self, word: str, k: int) -> int:
        n = len(word)
        vowels = "aeiou"
        consonants = [i for i, ch in enumerate(word) if ch not in vowels] + [n]
        m = len(consonants) - 1
        seen = dict.fromkeys(vowels, 0)
        distinct = 0
        right = 0
        ci = 0
        total = 0
        for left in range(n):
            while consonants[ci] < left:
                ci += 1
            while right < n and distinct < 5:
                ch = word[right]
                if ch in seen:
                    seen[ch] += 1
                    distinct += seen[ch] == 1
                right += 1
            if distinct < 5:
                break
            all_vowels_from = right - 1
            if k == 0:
                lo, hi = left, consonants[ci] - 1
            else:
                if ci + k - 1 >= m:
                    break
                lo, hi = consonants[ci + k - 1], consonants[ci + k] - 1
            total += max(0, hi - max(all_vowels_from, lo) + 1)
            ch = word[left]
            if ch in seen:
                seen[ch] -= 1
                distinct -= seen[ch] == 0
        return total
'''

HONEST[3312] = '''
from bisect import bisect_right


class Solution:
    def gcdValues(self, nums: List[int], queries: List[int]) -> List[int]:
        top = max(nums)
        freq = [0] * (top + 1)
        for v in nums:
            freq[v] += 1
        exact = [0] * (top + 1)       # exact[g]: pairs whose gcd is exactly g
        for g in range(top, 0, -1):
            multiples = sum(freq[g::g])
            pairs = multiples * (multiples - 1) // 2
            pairs -= sum(exact[2 * g::g])
            exact[g] = pairs
        running, cumulative = 0, []
        for g in range(top + 1):
            running += exact[g]
            cumulative.append(running)
        return [bisect_right(cumulative, q) for q in queries]
'''

HONEST[3313] = '''
from collections import deque


class Solution:
    def lastMarkedNodes(self, edges: List[List[int]]) -> List[int]:
        n = len(edges) + 1
        adj = [[] for _ in range(n)]
        for u, v in edges:
            adj[u].append(v)
            adj[v].append(u)

        def distances(src: int) -> List[int]:
            dist = [-1] * n
            dist[src] = 0
            queue = deque([src])
            while queue:
                u = queue.popleft()
                for v in adj[u]:
                    if dist[v] < 0:
                        dist[v] = dist[u] + 1
                        queue.append(v)
            return dist

        # the last node marked from any start is one end of a diameter
        from_zero = distances(0)
        end_a = from_zero.index(max(from_zero))
        from_a = distances(end_a)
        end_b = from_a.index(max(from_a))
        from_b = distances(end_b)
        return [end_a if da > db else end_b for da, db in zip(from_a, from_b)]
'''

HONEST[3315] = '''
class Solution:
    def minBitwiseArray(self, nums: List[int]) -> List[int]:
        result = []
        for x in nums:
            if x % 2 == 0:
                result.append(-1)          # an even number is never a | (a + 1)
                continue
            lowest_zero = (x + 1) & ~x     # the lowest 0 bit of x
            result.append(x - lowest_zero // 2)
        return result
'''

HONEST[3316] = '''
class Solution:
    def maxRemovals(self, source: str, pattern: str, targetIndices: List[int]) -> int:
        removable = set(targetIndices)
        m = len(pattern)
        NEG = float("-inf")
        # most[j]: max removals so far with pattern[:j] matched
        most = [0] + [NEG] * m
        for i, ch in enumerate(source):
            bonus = 1 if i in removable else 0
            for j in range(m, -1, -1):
                keep_for_match = most[j - 1] if j > 0 and pattern[j - 1] == ch else NEG
                most[j] = max(most[j] + bonus, keep_for_match)
        return most[m]
'''

HONEST[3317] = '''
class Solution:
    def numberOfWays(self, n: int, x: int, y: int) -> int:
        MOD = 10**9 + 7
        # surj[j]: ways to map the performers seen so far onto exactly j chosen, ordered-by-first-use stages
        surj = [1] + [0] * x
        for _ in range(n):
            nxt = [0] * (x + 1)
            for j in range(1, x + 1):
                nxt[j] = (surj[j] * j + surj[j - 1]) % MOD
            surj = nxt
        answer = 0
        choose = 1      # x * (x-1) * ... picks which stages are used, in order of first use
        power = 1
        for j in range(1, x + 1):
            choose = choose * (x - j + 1) % MOD
            power = power * y % MOD
            answer = (answer + surj[j] * choose % MOD * power) % MOD
        return answer
'''

HONEST[3320] = '''
class Solution:
    def countWinningSequences(self, s: str) -> int:
        MOD = 10**9 + 7
        n = len(s)
        idx = {"F": 0, "W": 1, "E": 2}
        beats = {(0, 2), (1, 0), (2, 1)}        # (winner, loser): F > E, W > F, E > W
        width = 2 * n + 1                       # Bob minus Alice, offset by n

        def shifted(vals, by):
            if by == 0:
                return vals
            if by > 0:
                return [0] * by + vals[:-by]
            return vals[-by:] + [0] * (-by)

        ways = None
        for ch in s:
            a = idx[ch]
            new = []
            for b in range(3):
                score = 1 if (b, a) in beats else (-1 if (a, b) in beats else 0)
                if ways is None:
                    base = [0] * width
                    base[n] = 1
                else:
                    o1, o2 = [ways[c] for c in range(3) if c != b]
                    base = [(x + y) % MOD for x, y in zip(o1, o2)]
                new.append(shifted(base, score))
            ways = new
        return sum(sum(w[n + 1:]) for w in ways) % MOD
'''

HONEST[3325] = '''
class Solution:
    def numberOfSubstrings(self, s: str, k: int) -> int:
        n = len(s)
        counts = [0] * 26
        reached = 0          # letters whose count in the window is >= k
        right = 0
        total = 0
        for left in range(n):
            while right < n and reached == 0:
                c = ord(s[right]) - 97
                counts[c] += 1
                if counts[c] == k:
                    reached += 1
                right += 1
            if reached == 0:
                break
            total += n - right + 1
            c = ord(s[left]) - 97
            if counts[c] == k:
                reached -= 1
            counts[c] -= 1
        return total
'''

HONEST[3334] = '''
from functools import reduce
from math import gcd


class Solution:
    def maxScore(self, nums: List[int]) -> int:
        def score(values) -> int:
            if not values:
                return 0
            g = reduce(gcd, values)
            l = reduce(lambda a, b: a * b // gcd(a, b), values)
            return g * l

        best = score(nums)
        for skip in range(len(nums)):
            best = max(best, score(nums[:skip] + nums[skip + 1:]))
        return best
'''

HONEST[3337] = '''
class Solution:
    def lengthAfterTransformations(self, s: str, t: int, nums: List[int]) -> int:
        MOD = 10**9 + 7
        size = 26

        def multiply(A, B):
            out = [[0] * size for _ in range(size)]
            for i in range(size):
                Ai, Oi = A[i], out[i]
                for m in range(size):
                    a = Ai[m]
                    if a:
                        Bm = B[m]
                        for j in range(size):
                            Oi[j] += a * Bm[j]
                for j in range(size):
                    Oi[j] %= MOD
            return out

        step = [[0] * size for _ in range(size)]
        for c, reach in enumerate(nums):
            for d in range(1, reach + 1):
                step[c][(c + d) % size] += 1
        vec = [0] * size
        for ch in s:
            vec[ord(ch) - 97] += 1
        power = step
        while t:
            if t & 1:
                vec = [sum(vec[i] * power[i][j] for i in range(size)) % MOD for j in range(size)]
            t >>= 1
            if t:
                power = multiply(power, power)
        return sum(vec) % MOD
'''

HONEST[3341] = '''
import heapq


class Solution:
    def minTimeToReach(self, moveTime: List[List[int]]) -> int:
        rows, cols = len(moveTime), len(moveTime[0])
        best = {(0, 0): 0}
        heap = [(0, 0, 0)]
        while heap:
            t, r, c = heapq.heappop(heap)
            if (r, c) == (rows - 1, cols - 1):
                return t
            if t > best.get((r, c), float("inf")):
                continue
            for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= nr < rows and 0 <= nc < cols:
                    arrive = max(t, moveTime[nr][nc]) + 1
                    if arrive < best.get((nr, nc), float("inf")):
                        best[(nr, nc)] = arrive
                        heapq.heappush(heap, (arrive, nr, nc))
        return -1
'''

HONEST[3342] = '''
import heapq


class Solution:
    def minTimeToReach(self, moveTime: List[List[int]]) -> int:
        rows, cols = len(moveTime), len(moveTime[0])
        INF = float("inf")
        best = [[INF] * cols for _ in range(rows)]
        best[0][0] = 0
        heap = [(0, 0, 0)]
        while heap:
            t, r, c = heapq.heappop(heap)
            if t != best[r][c]:
                continue
            if r == rows - 1 and c == cols - 1:
                return t
            cost = 1 if (r + c) % 2 == 0 else 2      # moves alternate 1, 2 seconds: set by the cell's parity
            for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= nr < rows and 0 <= nc < cols:
                    arrive = max(t, moveTime[nr][nc]) + cost
                    if arrive < best[nr][nc]:
                        best[nr][nc] = arrive
                        heapq.heappush(heap, (arrive, nr, nc))
        return -1
'''

HONEST[3343] = '''
from math import comb


class Solution:
    def countBalancedPermutations(self, num: str) -> int:
        MOD = 10**9 + 7
        digits = [int(ch) for ch in num]
        total = sum(digits)
        if total % 2:
            return 0
        target = total // 2
        n = len(digits)
        even_slots = (n + 1) // 2
        counts = [0] * 10
        for d in digits:
            counts[d] += 1
        # ways[c][s]: multisets placed so far with c digits on even slots summing to s, weighted by
        # the number of ways to choose their positions among even / odd slots
        ways = [[0] * (target + 1) for _ in range(even_slots + 1)]
        ways[0][0] = 1
        used = 0
        for d in range(10):
            cnt = counts[d]
            if cnt == 0:
                continue
            nxt = [[0] * (target + 1) for _ in range(even_slots + 1)]
            for c in range(even_slots + 1):
                odd_used = used - c
                if odd_used < 0:
                    continue
                for s in range(target + 1):
                    cur = ways[c][s]
                    if not cur:
                        continue
                    for put in range(cnt + 1):
                        c2, s2 = c + put, s + put * d
                        rest = cnt - put
                        if c2 > even_slots or s2 > target or odd_used + rest > n - even_slots:
                            continue
                        mult = comb(even_slots - c, put) * comb(n - even_slots - odd_used, rest)
                        nxt[c2][s2] = (nxt[c2][s2] + cur * mult) % MOD
            ways = nxt
            used += cnt
        return ways[even_slots][target] % MOD
'''

HONEST[3346] = '''
from bisect import bisect_left, bisect_right
from collections import Counter


class Solution:
    def maxFrequency(self, nums: List[int], k: int, numOperations: int) -> int:
        nums = sorted(nums)
        freq = Counter(nums)
        candidates = set()
        for v in nums:
            candidates.update((v - k, v, v + k))
        best = 0
        for target in candidates:
            reach = bisect_right(nums, target + k) - bisect_left(nums, target - k)
            best = max(best, min(reach, freq[target] + numOperations))
        return best
'''

HONEST[3348] = '''
class Solution:
    def smallestNumber(self, num: str, t: int) -> str:
        primes = (2, 3, 5, 7)
        need = []
        for p in primes:
            e = 0
            while t % p == 0:
                t //= p
                e += 1
            need.append(e)
        if t != 1:
            return "-1"
        digit_exp = {}
        for d in range(1, 10):
            x, exp = d, []
            for p in primes:
                e = 0
                while x % p == 0:
                    x //= p
                    e += 1
                exp.append(e)
            digit_exp[d] = exp

        def fewest_digits(req):
            """Smallest multiset of digits whose product covers `req` (exponents of 2, 3, 5, 7), sorted."""
            e2, e3, e5, e7 = (max(0, r) for r in req)
            nines, r3 = divmod(e3, 2)
            eights, r2 = divmod(e2, 3)
            fours, r2 = divmod(r2, 2)
            if r2 and r3:
                small = [6]
            elif fours and r3:
                small = [2, 6]
            else:
                small = [2] * r2 + [3] * r3 + [4] * fours
            return sorted(small + [5] * e5 + [7] * e7 + [8] * eights + [9] * nines)

        def tail(req, length):
            ds = fewest_digits(req)
            if len(ds) > length:
                return None
            return "1" * (length - len(ds)) + "".join(map(str, ds))

        n = len(num)
        prefix = [[0, 0, 0, 0]]
        zero_at = n
        for i, ch in enumerate(num):
            if ch == "0":
                zero_at = i
                break
            prefix.append([a + b for a, b in zip(prefix[-1], digit_exp[int(ch)])])
        if zero_at == n and all(a <= b for a, b in zip(need, prefix[n])):
            return num
        for i in range(min(zero_at, n - 1), -1, -1):
            for d in range(int(num[i]) + 1, 10):
                req = [a - b - c for a, b, c in zip(need, prefix[i], digit_exp[d])]
                if len(fewest_digits(req)) <= n - i - 1:
                    return num[:i] + str(d) + tail(req, n - i - 1)
        return tail(need, max(n + 1, len(fewest_digits(need))))
'''

HONEST[3350] = '''
class Solution:
    def maxIncreasingSubarrays(self, nums: List[int]) -> int:
        runs = []
        length = 1
        for prev, cur in zip(nums, nums[1:]):
            if cur > prev:
                length += 1
            else:
                runs.append(length)
                length = 1
        runs.append(length)
        best = max(r // 2 for r in runs)
        for left, right in zip(runs, runs[1:]):
            best = max(best, min(left, right))
        return best
'''

HONEST[3352] = '''
from math import comb


class Solution:
    def countKReducibleNumbers(self, s: str, k: int) -> int:
        MOD = 10**9 + 7
        L = len(s)
        steps = [0] * (L + 1)           # steps[c]: operations to bring c down to 1
        for c in range(2, L + 1):
            steps[c] = 1 + steps[bin(c).count("1")]
        # how many x in [1, n) have exactly c set bits
        with_bits = [0] * (L + 1)
        ones = 0
        for i, bit in enumerate(s):
            if bit == "1":
                free = L - i - 1
                for extra in range(free + 1):
                    with_bits[ones + extra] += comb(free, extra)
                ones += 1
        total = 0
        for c in range(1, L + 1):
            if steps[c] <= k - 1:
                total += with_bits[c]
        return total % MOD
'''

HONEST[3355] = '''
from itertools import accumulate


class Solution:
    def isZeroArray(self, nums: List[int], queries: List[List[int]]) -> bool:
        delta = [0] * (len(nums) + 1)
        for lo, hi in queries:
            delta[lo] += 1
            delta[hi + 1] -= 1
        coverage = accumulate(delta)
        return all(need <= have for need, have in zip(nums, coverage))
'''

HONEST[3359] = '''
class Solution:
    def countSubmatrices(self, grid: List[List[int]], k: int) -> int:
        rows, cols = len(grid), len(grid[0])
        stacks = [[] for _ in range(cols)]      # per column: [width, height] blocks, widths increasing
        sums = [0] * cols                       # per column: sum of width * height over its stack
        answer = 0
        for r in range(rows):
            row = grid[r]
            run = 0
            for c in range(cols):
                if row[c] > k:
                    run = 0
                elif c > 0 and run > 0 and row[c - 1] >= row[c]:
                    run += 1
                else:
                    run = 1
                stack = stacks[c]
                if run == 0:
                    stack.clear()
                    sums[c] = 0
                    continue
                height = 1
                while stack and stack[-1][0] >= run:
                    w, h = stack.pop()
                    sums[c] -= w * h
                    height += h
                stack.append([run, height])
                sums[c] += run * height
                answer += sums[c]
        return answer
'''

HONEST[3363] = '''
class Solution:
    def maxCollectedFruits(self, fruits: List[List[int]]) -> int:
        n = len(fruits)
        NEG = float("-inf")

        def corner_child(g) -> int:
            """Best haul of the child starting at (0, n-1), staying above the diagonal, up to row n-2."""
            best = [NEG] * n
            best[n - 1] = g[0][-1]
            for i in range(1, n - 1):
                nxt = [NEG] * n
                for j in range(max(i + 1, n - 1 - i), n):
                    prev = max(best[j], best[j - 1], best[j + 1] if j + 1 < n else NEG)
                    if prev != NEG:
                        nxt[j] = prev + g[i][j]
                best = nxt
            return best[n - 1]

        diagonal = sum(fruits[i][i] for i in range(n))
        transposed = [list(col) for col in zip(*fruits)]
        return diagonal + corner_child(fruits) + corner_child(transposed)
'''

HONEST[3365] = '''
class Solution:
    def isPossibleToRearrange(self, s: str, t: str, k: int) -> bool:
        size = len(s) // k
        pieces_s = sorted(s[i:i + size] for i in range(0, len(s), size))
        pieces_t = sorted(t[i:i + size] for i in range(0, len(s), size))
        return pieces_s == pieces_t
'''

HONEST[3371] = '''
from collections import Counter


class Solution:
    def getLargestOutlier(self, nums: List[int]) -> int:
        total = sum(nums)
        seen = Counter(nums)
        best = float("-inf")
        for x in nums:
            rest = total - x                  # the special numbers plus their sum element
            if rest % 2:
                continue
            half = rest // 2
            if half in seen and (half != x or seen[x] > 1):
                best = max(best, x)
        return best
'''

HONEST[3380] = '''
class Solution:
    def maxRectangleArea(self, points: List[List[int]]) -> int:
        pts = set(map(tuple, points))
        best = -1
        for x1, y1 in pts:
            for x2, y2 in pts:
                if x2 <= x1 or y2 <= y1:
                    continue
                if (x1, y2) not in pts or (x2, y1) not in pts:
                    continue
                inside = sum(1 for x, y in pts if x1 <= x <= x2 and y1 <= y <= y2)
                if inside == 4:
                    best = max(best, (x2 - x1) * (y2 - y1))
        return best
'''

HONEST[3381] = '''
class Solution:
    def maxSubarraySum(self, nums: List[int], k: int) -> int:
        smallest = [None] * k         # smallest prefix sum seen at each position residue mod k
        smallest[0] = 0
        prefix = 0
        best = float("-inf")
        for i, v in enumerate(nums, 1):
            prefix += v
            r = i % k
            if smallest[r] is not None:
                best = max(best, prefix - smallest[r])
                smallest[r] = min(smallest[r], prefix)
            else:
                smallest[r] = prefix
        return best
'''

HONEST[3382] = '''
class Solution:
    def maxRectangleArea(self, xCoord: List[int], yCoord: List[int]) -> int:
        pts = sorted(set(zip(xCoord, yCoord)))
        present = set(pts)
        best = -1
        for i, (x1, y1) in enumerate(pts):
            for x2, y2 in pts[i + 1:]:
                if x2 <= x1 or y2 <= y1:
                    continue
                if (x1, y2) not in present or (x2, y1) not in present:
                    continue
                clean = True
                for x, y in pts:
                    if x1 <= x <= x2 and y1 <= y <= y2 and (x, y) not in ((x1, y1), (x1, y2), (x2, y1), (x2, y2)):
                        clean = False
                        break
                if clean:
                    best = max(best, (x2 - x1) * (y2 - y1))
        return best
'''

HONEST[3383] = '''
from collections import deque


class Solution:
    def minRunesToAdd(self, n: int, crystals: List[int], flowFrom: List[int], flowTo: List[int]) -> int:
        out_edges = [[] for _ in range(n)]
        in_edges = [[] for _ in range(n)]
        for a, b in zip(flowFrom, flowTo):
            out_edges[a].append(b)
            in_edges[b].append(a)
        powered = [False] * n
        queue = deque(crystals)
        for c in crystals:
            powered[c] = True
        while queue:
            u = queue.popleft()
            for v in out_edges[u]:
                if not powered[v]:
                    powered[v] = True
                    queue.append(v)
        dark = [v for v in range(n) if not powered[v]]
        # Kosaraju on the unpowered subgraph: a new rune is needed per source component
        seen = [False] * n
        finish = []
        for root in dark:
            if seen[root]:
                continue
            seen[root] = True
            stack = [(root, iter(out_edges[root]))]
            while stack:
                u, it = stack[-1]
                for v in it:
                    if not powered[v] and not seen[v]:
                        seen[v] = True
                        stack.append((v, iter(out_edges[v])))
                        break
                else:
                    stack.pop()
                    finish.append(u)
        comp = [-1] * n
        count = 0
        for root in reversed(finish):
            if comp[root] >= 0:
                continue
            comp[root] = count
            stack = [root]
            while stack:
                u = stack.pop()
                for v in in_edges[u]:
                    if not powered[v] and comp[v] < 0:
                        comp[v] = count
                        stack.append(v)
            count += 1
        fed = [False] * count
        for u in dark:
            for v in out_edges[u]:
                if not powered[v] and comp[v] != comp[u]:
                    fed[comp[v]] = True
        return fed.count(False)
'''

HONEST[3388] = '''
class Solution:
    def beautifulSplits(self, nums: List[int]) -> int:
        n = len(nums)
        count = 0
        for i in range(1, n - 1):               # nums1 = nums[:i]
            first_ok = nums[i:2 * i] == nums[:i]
            for j in range(i + 1, n):           # nums2 = nums[i:j], nums3 = nums[j:]
                if first_ok and j - i >= i:
                    count += 1
                elif n - j >= j - i and nums[j:2 * j - i] == nums[i:j]:
                    count += 1
        return count
'''

HONEST[3389] = '''
class Solution:
    def makeStringGood(self, s: str) -> int:
        counts = [0] * 26
        for ch in s:
            counts[ord(ch) - 97] += 1

        def cost_for(target: int) -> int:
            # state: chars shifted into this letter from the previous one -> min cost so far
            states = {0: 0}
            for i in range(26):
                c = counts[i]
                deficit_next = max(0, target - counts[i + 1]) if i < 25 else 0
                shifts = {0, min(c, deficit_next), min(max(c - target, 0), deficit_next)}
                nxt = {}
                for carried, so_far in states.items():
                    for y in shifts:
                        here = c - y + carried
                        fix = min(here, abs(here - target))    # delete all, or insert/delete to target
                        total = so_far + y + fix
                        if total < nxt.get(y, float("inf")):
                            nxt[y] = total
                states = nxt
            return min(states.values())

        return min(cost_for(t) for t in range(1, max(counts) + 1))
'''

HONEST[3393] = '''
class Solution:
    def countPathsWithXorValue(self, grid: List[List[int]], k: int) -> int:
        MOD = 10**9 + 7
        cols = len(grid[0])
        above = [None] * cols               # per cell of the previous row: {xor so far: paths}
        for r, row in enumerate(grid):
            here = [None] * cols
            for c, v in enumerate(row):
                ways = {}
                if r == 0 and c == 0:
                    ways[v] = 1
                for src in (above[c] if r else None, here[c - 1] if c else None):
                    if src:
                        for x, w in src.items():
                            ways[x ^ v] = (ways.get(x ^ v, 0) + w) % MOD
                here[c] = ways
            above = here
        return above[cols - 1].get(k, 0)
'''

HONEST[3394] = '''
class Solution:
    def checkValidCuts(self, n: int, rectangles: List[List[int]]) -> bool:
        def three_groups(spans) -> bool:
            spans.sort()
            groups, reach = 0, -1
            for start, end in spans:
                if start >= reach:
                    groups += 1
                reach = max(reach, end)
            return groups >= 3

        xs = [(r[0], r[2]) for r in rectangles]
        ys = [(r[1], r[3]) for r in rectangles]
        return three_groups(xs) or three_groups(ys)
'''

HONEST[3397] = '''
class Solution:
    def maxDistinctElements(self, nums: List[int], k: int) -> int:
        distinct = 0
        last = float("-inf")
        for x in sorted(nums):
            candidate = max(last + 1, x - k)    # the smallest unused value this element can reach
            if candidate <= x + k:
                distinct += 1
                last = candidate
        return distinct
'''

HONEST[3398] = '''
class Solution:
    def minLength(self, s: str, numOps: int) -> int:
        n = len(s)
        runs = []
        start = 0
        for i in range(1, n + 1):
            if i == n or s[i] != s[start]:
                runs.append(i - start)
                start = i

        def flips_needed(limit: int) -> int:
            if limit == 1:       # only a perfect alternation works
                odd = sum(1 for i, ch in enumerate(s) if ch != "01"[i % 2])
                return min(odd, n - odd)
            return sum(r // (limit + 1) for r in runs)

        lo, hi = 1, n
        while lo < hi:
            mid = (lo + hi) // 2
            if flips_needed(mid) <= numOps:
                hi = mid
            else:
                lo = mid + 1
        return lo
'''

HONEST[3400] = '''
from collections import Counter, defaultdict


class Solution:
    def maximumMatchingIndices(self, nums1: List[int], nums2: List[int]) -> int:
        n = len(nums1)
        where = defaultdict(list)
        for j, v in enumerate(nums1):
            where[v].append(j)
        votes = Counter()            # shift -> indices that match after that many right shifts
        for i, v in enumerate(nums2):
            for j in where.get(v, ()):
                votes[(i - j) % n] += 1
        return max(votes.values(), default=0)
'''

HONEST[3403] = '''
class Solution:
    def answerString(self, word: str, numFriends: int) -> str:
        if numFriends == 1:
            return word
        keep = len(word) - numFriends + 1     # the longest piece a split can leave
        best = ""
        for i in range(len(word)):
            piece = word[i:i + keep]
            if piece > best:
                best = piece
        return best
'''

HONEST[3404] = '''
from math import gcd
from collections import Counter


class Solution:
    def numberOfSubsequences(self, nums: List[int]) -> int:
        def ratio(a: int, b: int):
            g = gcd(a, b)
            return a // g, b // g

        n = len(nums)
        left_pairs = Counter()          # ratio nums[p] / nums[q] over pairs with p + 2 <= q <= r - 2
        total = 0
        for r in range(4, n - 2):
            q = r - 2
            for p in range(q - 1):
                left_pairs[ratio(nums[p], nums[q])] += 1
            for s in range(r + 2, n):
                total += left_pairs[ratio(nums[s], nums[r])]
        return total
'''

HONEST[3406] = '''
class Solution:
    def answerString(self, word: str, numFriends: int) -> str:
        if numFriends == 1:
            return word
        longest = len(word) - numFriends + 1
        return max(word[i:i + longest] for i in range(len(word)))
'''

HONEST[3410] = '''
class Solution:
    def maxSubarraySum(self, nums: List[int]) -> int:
        top = max(nums)
        if top <= 0:
            return top                      # removing a value never beats the single largest element
        n = len(nums)
        best = cur = 0
        for v in nums:                      # Kadane: no removal (and any stretch without the removed value)
            cur = max(0, cur + v)
            best = max(best, cur)
        prefix = [0] * (n + 1)
        for i, v in enumerate(nums):
            prefix[i + 1] = prefix[i] + v
        # sparse tables over prefix for range max / min
        hi, lo = [prefix[:]], [prefix[:]]
        span = 1
        while 2 * span <= n + 1:
            ph, pl = hi[-1], lo[-1]
            hi.append([max(ph[i], ph[i + span]) for i in range(n + 2 - 2 * span)])
            lo.append([min(pl[i], pl[i + span]) for i in range(n + 2 - 2 * span)])
            span *= 2

        def query(table, a, b, pick):
            level = (b - a + 1).bit_length() - 1
            return pick(table[level][a], table[level][b - (1 << level) + 1])

        where = {}
        for i, v in enumerate(nums):
            if v < 0:
                where.setdefault(v, []).append(i)
        for x, pos in where.items():
            bounds = [-1] + pos + [n]
            low_so_far = None
            for g in range(len(bounds) - 1):
                a, b = bounds[g] + 1, bounds[g + 1]     # prefix indices of gap g (after g removals)
                if low_so_far is not None:
                    best = max(best, query(hi, a, b, max) - x * g - low_so_far)
                cand = query(lo, a, b, min) - x * g
                low_so_far = cand if low_so_far is None else min(low_so_far, cand)
        return best
'''

HONEST[3412] = '''
class Solution:
    def calculateScore(self, s: str) -> int:
        open_at = [[] for _ in range(26)]      # unmarked indices per letter, most recent last
        score = 0
        for i, ch in enumerate(s):
            c = ord(ch) - 97
            partner = open_at[25 - c]
            if partner:
                score += i - partner.pop()
            else:
                open_at[c].append(i)
        return score
'''

HONEST[3416] = '''
class Solution:
    def subsequencesWithMiddleMode(self, nums: List[int]) -> int:
        MOD = 10**9 + 7

        def c2(m: int) -> int:
            return m * (m - 1) // 2

        left, right = {}, {}
        for v in nums:
            right[v] = right.get(v, 0) + 1
        # aggregates over values w: sum C(l_w,2), sum C(r_w,2), sum l*r, sum l*r^2, sum l^2*r
        agg = [0, sum(c2(r) for r in right.values()), 0, 0, 0]

        def terms(l: int, r: int):
            return (c2(l), c2(r), l * r, l * r * r, l * l * r)

        def move(v: int, dl: int, dr: int) -> None:
            l, r = left.get(v, 0), right.get(v, 0)
            for i, t in enumerate(terms(l, r)):
                agg[i] -= t
            l, r = l + dl, r + dr
            left[v], right[v] = l, r
            for i, t in enumerate(terms(l, r)):
                agg[i] += t

        n = len(nums)
        total = 0
        for i, v in enumerate(nums):
            move(v, 0, -1)                   # nums[i] is the middle: neither left nor right
            L, R = i, n - 1 - i
            lv, rv = left.get(v, 0), right.get(v, 0)
            Lo, Ro = L - lv, R - rv          # elements of other values on each side
            s2l, s2r, slr, slr2, sl2r = agg
            X = slr - lv * rv
            Y = slr2 - lv * rv * rv
            Z = sl2r - lv * lv * rv
            pairs_r = c2(Ro) - (s2r - c2(rv))   # right pairs of two different non-v values
            pairs_l = c2(Lo) - (s2l - c2(lv))
            one_left = Lo * pairs_r - Ro * X + Y   # (left non-v y, right distinct pair), all three values distinct
            one_right = Ro * pairs_l - Lo * X + Z
            ways = (c2(L) * c2(R) - c2(Lo) * c2(Ro) - lv * Lo * c2(Ro) - c2(Lo) * rv * Ro
                    + lv * one_left + rv * one_right)
            total = (total + ways) % MOD
            move(v, 1, 0)
        return total
'''

HONEST[3418] = '''
class Solution:
    def maximumAmount(self, coins: List[List[int]]) -> int:
        rows, cols = len(coins), len(coins[0])
        NEG = float("-inf")
        # best[j][u]: max profit reaching (row, j) having neutralised u robbers
        prev = [[NEG] * 3 for _ in range(cols)]
        for r in range(rows):
            cur = [[NEG] * 3 for _ in range(cols)]
            for c in range(cols):
                v = coins[r][c]
                for u in range(3):
                    if r == 0 and c == 0:
                        came = 0 if u == 0 else NEG
                        came_saved = 0 if u == 1 else NEG
                    else:
                        came = max(prev[c][u], cur[c - 1][u] if c else NEG)
                        came_saved = max(prev[c][u - 1], cur[c - 1][u - 1] if c else NEG) if u else NEG
                    take = came + v
                    if v < 0 and u > 0:
                        take = max(take, came_saved)
                    cur[c][u] = take
            prev = cur
        return max(prev[cols - 1])
'''

HONEST[3420] = '''
from collections import deque


class Solution:
    def countNonDecreasingSubarrays(self, nums: List[int], k: int) -> int:
        n = len(nums)
        blocks = deque()        # (level, size) of the raised window, leftmost block first
        cost = 0
        right = n - 1
        total = 0
        for left in range(n - 1, -1, -1):
            level, size = nums[left], 1
            while blocks and blocks[0][0] < level:
                lower, count = blocks.popleft()
                cost += (level - lower) * count
                size += count
            blocks.appendleft((level, size))
            while cost > k:
                top, count = blocks.pop()
                cost -= top - nums[right]
                right -= 1
                if count > 1:
                    blocks.append((top, count - 1))
            total += right - left + 1
        return total
'''

HONEST[3431] = '''
class Solution:
    def minUnlockedIndices(self, nums: List[int], locked: List[int]) -> int:
        n = len(nums)
        suffix_has = [[False] * 4 for _ in range(n + 1)]
        for i in range(n - 1, -1, -1):
            suffix_has[i] = suffix_has[i + 1][:]
            suffix_has[i][nums[i]] = True
        seen2 = seen3 = False
        unlocks = 0
        for i in range(n):
            if nums[i] == 3 and suffix_has[i][1]:
                return -1                     # a 3 can never pass a 1
            seen2 = seen2 or nums[i] == 2
            seen3 = seen3 or nums[i] == 3
            later = suffix_has[i + 1]
            # the swap between i and i + 1 is needed when something must cross that boundary
            must_cross = (seen2 and later[1]) or (seen3 and later[2])
            if must_cross and locked[i]:
                unlocks += 1
        return unlocks
'''

HONEST[3433] = '''
class Solution:
    def countMentions(self, numberOfUsers: int, events: List[List[str]]) -> List[int]:
        ordered = sorted(events, key=lambda e: (int(e[1]), 0 if e[0] == "OFFLINE" else 1))
        back_online = [0] * numberOfUsers
        counts = [0] * numberOfUsers
        for kind, stamp, payload in ordered:
            now = int(stamp)
            if kind == "OFFLINE":
                back_online[int(payload)] = now + 60
                continue
            if payload == "ALL":
                for u in range(numberOfUsers):
                    counts[u] += 1
            elif payload == "HERE":
                for u in range(numberOfUsers):
                    if back_online[u] <= now:
                        counts[u] += 1
            else:
                for token in payload.split():
                    counts[int(token[2:])] += 1
        return counts
'''

HONEST[3439] = '''
class Solution:
    def maxFreeTime(self, eventTime: int, k: int, startTime: List[int], endTime: List[int]) -> int:
        gaps = []
        last_end = 0
        for s, e in zip(startTime, endTime):
            gaps.append(s - last_end)
            last_end = e
        gaps.append(eventTime - endTime[-1])
        width = k + 1                       # moving k meetings merges k + 1 neighbouring gaps
        window = sum(gaps[:width])
        best = window
        for i in range(width, len(gaps)):
            window += gaps[i] - gaps[i - width]
            best = max(best, window)
        return best
'''

HONEST[3441] = '''
class Solution:
    def minCostGoodCaption(self, caption: str) -> str:
        n = len(caption)
        if n < 3:
            return ""
        INF = float("inf")
        vals = [ord(ch) - 97 for ch in caption]
        # run[i][s][c]: min cost of positions i.. when position i-1 holds letter c in a run of length s+1 (s=2: >= 3)
        run = [[[INF] * 26 for _ in range(3)] for _ in range(n + 1)]
        run[n][2] = [0] * 26
        fresh = [INF] * (n + 1)        # min cost of positions i.. starting a new run at i
        for i in range(n - 1, -1, -1):
            v = vals[i]
            nxt = run[i + 1]
            fresh[i] = min(abs(v - c) + nxt[0][c] for c in range(26))
            cur = run[i]
            for c in range(26):
                here = abs(v - c)
                cur[0][c] = here + nxt[1][c]
                cur[1][c] = here + nxt[2][c]
                cur[2][c] = min(here + nxt[2][c], fresh[i])
        out = []
        letter, state = -1, 2
        for i in range(n):
            v = vals[i]
            nxt = run[i + 1]
            if letter >= 0 and state < 2:
                out.append(letter)
                state += 1
                continue
            target = fresh[i] if letter < 0 else run[i][2][letter]
            for c in range(26):
                here = abs(v - c)
                if c == letter and here + nxt[2][c] == target:
                    state = 2
                    break
                if c != letter and here + nxt[0][c] == target:
                    letter, state = c, 0
                    break
            letter = c
            out.append(c)
        return "".join(chr(97 + c) for c in out)
'''

HONEST[3443] = '''
class Solution:
    def maxDistance(self, s: str, k: int) -> int:
        north = south = east = west = 0
        best = 0
        for steps, move in enumerate(s, 1):
            if move == "N":
                north += 1
            elif move == "S":
                south += 1
            elif move == "E":
                east += 1
            else:
                west += 1
            here = abs(north - south) + abs(east - west)
            # each changed move turns a step back into a step away: +2, never beyond the steps taken
            best = max(best, min(here + 2 * k, steps))
        return best
'''

HONEST[3446] = '''
from collections import defaultdict


class Solution:
    def sortMatrix(self, grid: List[List[int]]) -> List[List[int]]:
        n = len(grid)
        diagonals = defaultdict(list)
        for i in range(n):
            for j in range(n):
                diagonals[i - j].append(grid[i][j])
        for key, values in diagonals.items():
            # popped from the end: lower-left (key >= 0) must come out largest first
            values.sort(reverse=key < 0)
        return [[diagonals[i - j].pop() for j in range(n)] for i in range(n)]
'''

HONEST[3447] = '''
class Solution:
    def assignElements(self, groups: List[int], elements: List[int]) -> List[int]:
        top = max(groups)
        owner = [-1] * (top + 1)
        for j, e in enumerate(elements):
            if e > top or owner[e] != -1 and owner[e] < j:
                continue
            for multiple in range(e, top + 1, e):
                if owner[multiple] == -1:
                    owner[multiple] = j
        return [owner[g] for g in groups]
'''

HONEST[3448] = '''
class Solution:
    def countSubstrings(self, s: str) -> int:
        total = 0
        # ending[d][r]: substrings ending at the previous position whose value is r modulo d
        ending = [None] + [[0] * d for d in range(1, 10)]
        for ch in s:
            digit = int(ch)
            for d in range(1, 10):
                old = ending[d]
                new = [0] * d
                for r in range(d):
                    if old[r]:
                        new[(r * 10 + digit) % d] += old[r]
                new[digit % d] += 1
                ending[d] = new
            if digit:
                total += ending[digit][0]
        return total
'''

HONEST[3453] = '''
from collections import defaultdict


class Solution:
    def separateSquares(self, squares: List[List[int]]) -> float:
        half = sum(l * l for _, _, l in squares) / 2
        change = defaultdict(int)          # y -> change of the total width of squares covering heights above y
        for _, y, l in squares:
            change[y] += l
            change[y + l] -= l
        below = 0
        width = 0
        last = 0
        for y in sorted(change):
            gained = width * (y - last)
            if below + gained >= half:
                return last + (half - below) / width
            below += gained
            width += change[y]
            last = y
        return float(last)
'''

HONEST[3459] = '''
class Solution:
    def lenOfVDiagonal(self, grid: List[List[int]]) -> int:
        rows, cols = len(grid), len(grid[0])
        dirs = [(1, 1), (1, -1), (-1, -1), (-1, 1)]   # each one's clockwise turn is the next

        def expected(step: int) -> int:
            return 2 if step % 2 == 1 else 0

        def straight(r: int, c: int, d: int, step: int) -> int:
            """Cells matching the sequence from (r, c) on (that cell is number `step`), going along d."""
            dr, dc = dirs[d]
            n = 0
            while 0 <= r < rows and 0 <= c < cols and grid[r][c] == expected(step):
                n += 1
                step += 1
                r, c = r + dr, c + dc
            return n

        best = 0
        for r in range(rows):
            for c in range(cols):
                if grid[r][c] != 1:
                    continue
                best = max(best, 1)
                for d, (dr, dc) in enumerate(dirs):
                    tr, tc = dirs[(d + 1) % 4]
                    pr, pc, length = r, c, 1
                    while True:
                        turn = straight(pr + tr, pc + tc, (d + 1) % 4, length)
                        best = max(best, length + turn)
                        nr, nc = pr + dr, pc + dc
                        if 0 <= nr < rows and 0 <= nc < cols and grid[nr][nc] == expected(length):
                            pr, pc, length = nr, nc, length + 1
                        else:
                            break
        return best
'''

HONEST[3460] = '''
class Solution:
    def longestCommonPrefix(self, s: str, t: str) -> int:
        limit = min(len(s), len(t))
        i = 0
        while i < limit and s[i] == t[i]:
            i += 1
        if i == limit:
            return i
        # the first mismatch: dropping s[i] is at least as good as dropping anything earlier
        extra = 0
        while i + 1 + extra < len(s) and i + extra < len(t) and s[i + 1 + extra] == t[i + extra]:
            extra += 1
        return i + extra
'''

HONEST[3472] = '''
from functools import lru_cache


class Solution:
    def longestPalindromicSubsequence(self, s: str, k: int) -> int:
        codes = [ord(ch) for ch in s]

        @lru_cache(maxsize=None)
        def best(lo: int, hi: int, budget: int) -> int:
            if lo > hi:
                return 0
            if lo == hi:
                return 1
            gap = abs(codes[lo] - codes[hi])
            need = min(gap, 26 - gap)           # steps around the alphabet circle to make the ends equal
            options = [best(lo + 1, hi, budget), best(lo, hi - 1, budget)]
            if need <= budget:
                options.append(2 + best(lo + 1, hi - 1, budget - need))
            return max(options)

        answer = best(0, len(s) - 1, k)
        best.cache_clear()
        return answer
'''
