# Summarises bench/rates.sh output: median msgs/s per server and the median of per-round ratios against its peer.
import sys, statistics as st, collections
rows=[l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if l.strip() and not l.startswith('round')]
by=collections.defaultdict(list)
for r in rows:
    if len(r)<8 or r[3]=='FAILED': continue
    by[(r[1],r[2])].append(r)
base=collections.defaultdict(lambda:'go', {'libev':'c-epoll','threads':'c-threads','c-epoll':'c-epoll','c-threads':'c-threads'})
# per-round ratios vs peer
rounds=collections.defaultdict(dict)
for r in rows:
    if len(r)>=8 and r[3]!='FAILED': rounds[(r[0],r[2])][r[1]]=float(r[3])
print("server\tsize\tmedian msgs/s\tratio vs peer (median of per-round)\tratio vs libev\tserver cpu us/msg\tserver cs/msg\tclient cpu%")
for (s,size),rs in sorted(by.items(), key=lambda k:(k[0][1],k[0][0])):
    ratios=[v[s]/v[base[s]] for (rd,sz),v in rounds.items() if sz==size and s in v and base[s] in v]
    vs_libev=[v[s]/v['libev'] for (rd,sz),v in rounds.items() if sz==size and s in v and 'libev' in v]
    lib=f"{st.median(vs_libev):.2f}" if vs_libev else "-"
    peer=f"{st.median(ratios):.2f} vs {base[s]}" if ratios else "-"
    print(f"{s}\t{size}\t{st.median(float(x[3]) for x in rs):.0f}\t{peer}\t{lib}\t{st.median(float(x[4]) for x in rs):.2f}\t{st.median(float(x[5]) for x in rs):.4f}\t{st.median(float(x[6]) for x in rs):.0f}")
