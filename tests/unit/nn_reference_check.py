#!/usr/bin/env python3
# Randomised cross-checks of the NN kernel family (MatMul/Gemm/Conv/ConvTranspose/pooling/quantization/
# Col2Im) against numpy/torch, across dtypes and attribute combinations the ONNX test data does not cover.
# Usage: STRATA=build/strata /usr/bin/python3 tests/unit/nn_reference_check.py
# Prints FAIL lines and a final [passed, total] count; exits non-zero on failure.
import os, sys
import onnx, numpy as np, subprocess, os, tempfile, itertools
from onnx import helper, TensorProto, numpy_helper
STRATA=os.environ.get('STRATA', 'build/strata')
NP2ONNX={np.float32:TensorProto.FLOAT,np.float64:TensorProto.DOUBLE,np.float16:TensorProto.FLOAT16,np.int32:TensorProto.INT32,np.int64:TensorProto.INT64,np.uint32:TensorProto.UINT32,np.uint64:TensorProto.UINT64,np.int8:TensorProto.INT8,np.uint8:TensorProto.UINT8}
cnt=[0,0]
def run(op, inputs, attrs, nout=1, opset=17, out_types=None, name='t'):
    d=tempfile.mkdtemp(dir=None)
    ins=[]; names=[]
    for i,a in enumerate(inputs):
        if a is None: names.append(''); continue
        n='in%d'%i; names.append(n)
        ins.append(helper.make_tensor_value_info(n, NP2ONNX[a.dtype.type], a.shape))
    outs=[helper.make_tensor_value_info('out%d'%i, TensorProto.UNDEFINED, None) for i in range(nout)]
    node=helper.make_node(op, names, ['out%d'%i for i in range(nout)], **attrs)
    g=helper.make_graph([node], 'g', ins, outs)
    m=helper.make_model(g, opset_imports=[helper.make_opsetid('',opset)])
    m.ir_version=8
    onnx.save(m, d+'/m.onnx')
    args=[STRATA,'run',d+'/m.onnx','--output-dir',d,'--format','npy']
    for i,a in enumerate(inputs):
        if a is None: continue
        np.save(d+'/in%d.npy'%i, a); args+=['--input','in%d=%s/in%d.npy'%(i,d,i)]
    r=subprocess.run(args,capture_output=True,text=True)
    if r.returncode!=0:
        return None, r.stderr+r.stdout
    res=[]
    for i in range(nout):
        p=d+'/output_%d.npy'%i
        if not os.path.exists(p): p=d+'/out%d.npy'%i
        res.append(np.load(p))
    subprocess.run(['rm','-rf',d])
    return res, None
def check(label, got, err, want, rtol=1e-4, atol=1e-4):
    cnt[1]+=1
    if got is None:
        print('FAIL', label, 'error:', err.strip()[:300]); return
    g=got[0]
    if g.shape!=want.shape or g.dtype!=want.dtype:
        print('FAIL', label, 'shape/dtype', g.shape, g.dtype, want.shape, want.dtype); return
    if np.issubdtype(want.dtype, np.floating):
        ok=np.allclose(g.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)
    else:
        ok=np.array_equal(g,want)
    if not ok:
        print('FAIL', label, 'maxdiff', np.max(np.abs(g.astype(np.float64)-want.astype(np.float64))))
    else: cnt[0]+=1
# ---- t1 ----
import torch, torch.nn.functional as F
rng=np.random.default_rng(0)
# MatMul dtypes & broadcasting
shapes=[((3,),(3,)),((3,),(3,4)),((2,3),(3,)),((2,1,3,4),(5,4,6)),((1,3,4),(2,4,2)),((4,),(2,4,3)),((2,0,3),(3,4)),((2,3,0),(0,4))]
for dt in [np.float32,np.float64,np.float16,np.int32,np.int64,np.uint32,np.uint64]:
    for sa,sb in shapes:
        a=(rng.random(sa)*4).astype(dt); b=(rng.random(sb)*4).astype(dt)
        want=np.matmul(a.astype(np.float64),b.astype(np.float64)).astype(dt) if dt!=np.float16 else np.matmul(a.astype(np.float32),b.astype(np.float32)).astype(dt)
        if np.issubdtype(dt,np.integer): want=np.matmul(a,b)
        g,e=run('MatMul',[a,b],{}); check('MatMul %s %s %s'%(dt.__name__,sa,sb),g,e,want,rtol=1e-2 if dt==np.float16 else 1e-4)
# Gemm
for dt in [np.float32,np.float64,np.float16,np.int32,np.int64,np.uint32,np.uint64]:
  for ta,tb in itertools.product([0,1],[0,1]):
    for cs in [None,(),(1,),(5,),(3,1),(3,5)]:
      for alpha,beta in [(1.0,1.0),(0.5,2.0)]:
        if np.issubdtype(dt,np.integer) and alpha!=1.0: continue
        A=(rng.random((4,3) if ta else (3,4))*4).astype(dt); B=(rng.random((5,4) if tb else (4,5))*4).astype(dt)
        C=None if cs is None else (rng.random(cs)*4).astype(dt)
        a64=A.astype(np.float64); b64=B.astype(np.float64)
        if ta: a64=a64.T
        if tb: b64=b64.T
        want=alpha*(a64@b64)+(0 if C is None else beta*C.astype(np.float64))
        want=want.astype(dt)
        g,e=run('Gemm',[A,B,C] if C is not None else [A,B],dict(transA=ta,transB=tb,alpha=alpha,beta=beta),opset=13)
        check('Gemm %s ta%d tb%d C%s a%g'%(dt.__name__,ta,tb,cs,alpha),g,e,want,rtol=1e-2 if dt==np.float16 else 1e-4, atol=1e-2 if dt==np.float16 else 1e-4)
# Gemm opset 6 with broadcast attr
A=rng.random((3,4)).astype(np.float32); B=rng.random((4,5)).astype(np.float32); C=rng.random((5,)).astype(np.float32)
g,e=run('Gemm',[A,B,C],dict(broadcast=1),opset=6); check('Gemm opset6 bcast',g,e,A@B+C)
# ---- t2 ----
import torch, torch.nn.functional as F
rng=np.random.default_rng(1)
convf={1:F.conv1d,2:F.conv2d,3:F.conv3d}
convtf={1:F.conv_transpose1d,2:F.conv_transpose2d,3:F.conv_transpose3d}
for nd in [1,2,3]:
  for trial in range(10):
    G=int(rng.choice([1,2,3])); cpg=int(rng.integers(1,3)); mpg=int(rng.integers(1,3))
    C=G*cpg; M=G*mpg
    k=[int(rng.integers(1,4)) for _ in range(nd)]; s=[int(rng.integers(1,3)) for _ in range(nd)]; d=[int(rng.integers(1,3)) for _ in range(nd)]
    p=[int(rng.integers(0,3)) for _ in range(nd)]
    ins=[int(rng.integers(5,9)) for _ in range(nd)]
    N=2
    for dt in [np.float32,np.float64,np.float16]:
      x=rng.standard_normal([N,C]+ins).astype(dt); w=rng.standard_normal([M,cpg]+k).astype(dt); b=rng.standard_normal([M]).astype(dt)
      tx=torch.tensor(x.astype(np.float64)); tw=torch.tensor(w.astype(np.float64)); tb=torch.tensor(b.astype(np.float64))
      want=convf[nd](tx,tw,tb,stride=s,padding=p,dilation=d,groups=G).numpy().astype(dt)
      tol=dict(rtol=1e-2,atol=1e-2) if dt==np.float16 else {}
      g,e=run('Conv',[x,w,b],dict(strides=s,dilations=d,pads=p+p,group=G,kernel_shape=k)); check('Conv nd%d %s G%d k%s s%s d%s p%s'%(nd,dt.__name__,G,k,s,d,p),g,e,want,**tol)
      # ConvTranspose
      wt=rng.standard_normal([C,mpg]+k).astype(dt); twt=torch.tensor(wt.astype(np.float64))
      op=[int(rng.integers(0,min(si,di))) if max(si,di)>1 else 0 for si,di in zip(s,d)]
      pt=[min(pi, (ki-1)*di) for pi,ki,di in zip(p,k,d)]
      want=convtf[nd](tx,twt,tb,stride=s,padding=pt,output_padding=op,groups=G,dilation=d).numpy().astype(dt)
      g,e=run('ConvTranspose',[x,wt,b],dict(strides=s,dilations=d,pads=pt+pt,group=G,output_padding=op)); check('ConvT nd%d %s G%d k%s s%s d%s p%s op%s'%(nd,dt.__name__,G,k,s,d,pt,op),g,e,want,**tol)
# auto_pad same for conv 
x=rng.standard_normal([1,2,7,8]).astype(np.float32); w=rng.standard_normal([3,2,3,2]).astype(np.float32)
for ap in ['SAME_UPPER','SAME_LOWER','VALID']:
  g,e=run('Conv',[x,w],dict(auto_pad=ap,strides=[2,2]))
  for dt in [np.float64]:
    g2,e2=run('Conv',[x.astype(dt),w.astype(dt)],dict(auto_pad=ap,strides=[2,2]))
    check('Conv autopad %s f32 vs f64'%ap,g,e,g2[0].astype(np.float32))
# ---- t3 ----
import torch, torch.nn.functional as F
rng=np.random.default_rng(2)
mp={1:F.max_pool1d,2:F.max_pool2d,3:F.max_pool3d}
ap={1:F.avg_pool1d,2:F.avg_pool2d,3:F.avg_pool3d}
for nd in [1,2,3]:
  for trial in range(12):
    k=[int(rng.integers(1,4)) for _ in range(nd)]; s=[int(rng.integers(1,3)) for _ in range(nd)]; d=[int(rng.integers(1,3)) for _ in range(nd)]
    p=[int(rng.integers(0,ki//2+1)) for ki in k]
    ins=[int(rng.integers(5,9)) for _ in range(nd)]
    ceil=int(rng.integers(0,2))
    x=rng.standard_normal([2,3]+ins)
    tx=torch.tensor(x)
    y,idx=mp[nd](tx,k,s,p,d,ceil_mode=bool(ceil),return_indices=True)
    for dt in [np.float32,np.float64,np.float16,np.int8,np.uint8]:
      xx=(x*40).astype(dt) if np.issubdtype(dt,np.integer) else x.astype(dt)
      yy,ii=mp[nd](torch.tensor(xx.astype(np.float64)),k,s,p,d,ceil_mode=bool(ceil),return_indices=True)
      g,e=run('MaxPool',[xx],dict(kernel_shape=k,strides=s,pads=p+p,dilations=d,ceil_mode=ceil),nout=2,opset=12)
      check('MaxPool nd%d %s k%s s%s d%s p%s c%d'%(nd,dt.__name__,k,s,d,p,ceil),g,e,yy.numpy().astype(dt))
      if g is not None and dt==np.float64:
        # torch indices are per-plane; onnx are global
        n,c=ii.shape[:2]; plane=int(np.prod(ins))
        off=(np.arange(n*c).reshape(n,c)*plane).reshape([n,c]+[1]*nd)
        check('MaxPool idx nd%d'%nd,[g[1]],None,ii.numpy()+off)
    for cip in [0,1]:
      for dt in [np.float32,np.float64,np.float16]:
        want=ap[nd](torch.tensor(x),k,s,p,ceil_mode=bool(ceil),count_include_pad=bool(cip)).numpy().astype(dt)
        g,e=run('AveragePool',[x.astype(dt)],dict(kernel_shape=k,strides=s,pads=p+p,ceil_mode=ceil,count_include_pad=cip),opset=11)
        check('AvgPool nd%d %s k%s s%s p%s c%d cip%d'%(nd,dt.__name__,k,s,p,ceil,cip),g,e,want,rtol=1e-2 if dt==np.float16 else 1e-4, atol=1e-2 if dt==np.float16 else 1e-4)
    # LpPool p=2,3 no pads vs torch (torch lp_pool has no padding)
    if nd<=2:
      for pp in [2,3]:
        lp=F.lp_pool1d if nd==1 else F.lp_pool2d
        want=lp(torch.tensor(np.abs(x)),pp,k if nd>1 else k[0],s if nd>1 else s[0]).numpy()
        g,e=run('LpPool',[x],dict(kernel_shape=k,strides=s,p=pp),opset=11)
        check('LpPool nd%d p%d'%(nd,pp),g,e,want)
# storage order 1
x=rng.standard_normal([1,2,5,6]).astype(np.float32)
g,e=run('MaxPool',[x],dict(kernel_shape=[2,2],strides=[2,2],storage_order=1),nout=2,opset=12)
yy,ii=F.max_pool2d(torch.tensor(x),2,2,return_indices=True)
ii=ii.numpy(); h,w=ii//6, ii%6; col=w*5+h + (np.arange(2)*30).reshape(1,2,1,1)
check('MaxPool storage_order',[g[1]],e,col)
# Global
for dt in [np.float32,np.float64,np.float16]:
  x=rng.standard_normal([2,3,4,5]).astype(dt)
  g,e=run('GlobalAveragePool',[x],{}); check('GAP '+dt.__name__,g,e,x.astype(np.float64).mean(axis=(2,3),keepdims=True).astype(dt),rtol=1e-2,atol=1e-3)
  g,e=run('GlobalMaxPool',[x],{}); check('GMP '+dt.__name__,g,e,x.max(axis=(2,3),keepdims=True))
  g,e=run('GlobalLpPool',[x],dict(p=3)); check('GLP '+dt.__name__,g,e,((np.abs(x.astype(np.float64))**3).sum(axis=(2,3),keepdims=True)**(1/3)).astype(dt),rtol=1e-2,atol=1e-2)
# ---- t4 ----
import torch, torch.nn.functional as F
rng=np.random.default_rng(3)
def q(v,dt): 
    i=np.iinfo(dt); return np.clip(np.rint(v),i.min,i.max).astype(dt)
# QuantizeLinear per-tensor/per-axis
x=rng.standard_normal((2,3,4)).astype(np.float32)*10
for dt in [np.uint8,np.int8]:
  s=np.array(0.1,np.float32); z=np.array(3,dt)
  g,e=run('QuantizeLinear',[x,s,z],{},opset=10); check('Q pt '+dt.__name__,g,e,q(np.rint(x/s)+3,dt))
  s3=np.array([0.1,0.2,0.3],np.float32); z3=np.array([1,2,3],dt)
  g,e=run('QuantizeLinear',[x,s3,z3],dict(axis=1),opset=13); check('Q axis '+dt.__name__,g,e,q(np.rint(x/s3.reshape(1,3,1))+z3.reshape(1,3,1),dt))
  s4=np.array([0.1,0.2,0.3,0.4],np.float32); z4=np.array([1,2,3,4],dt)
  g,e=run('QuantizeLinear',[x,s4,z4],dict(axis=-1),opset=13); check('Q axis-1 '+dt.__name__,g,e,q(np.rint(x/s4)+z4,dt))
  xi=(rng.random((2,3,4))*100).astype(dt)
  g,e=run('DequantizeLinear',[xi,s3,z3],dict(axis=1),opset=13); check('DQ axis '+dt.__name__,g,e,((xi.astype(np.float32)-z3.reshape(1,3,1))*s3.reshape(1,3,1)).astype(np.float32))
g,e=run('QuantizeLinear',[x,np.array(0.1,np.float32)],{},opset=10); check('Q nozp',g,e,q(np.rint(x/np.float32(0.1)),np.uint8))
xi=rng.integers(-1000,1000,(5,)).astype(np.int32)
g,e=run('DequantizeLinear',[xi,np.array(0.5,np.float32)],{},opset=10); check('DQ int32',g,e,xi.astype(np.float32)*0.5)
# ConvInteger/QLinearConv with per-channel w zp/scale
for xdt,wdt in [(np.uint8,np.uint8),(np.uint8,np.int8),(np.int8,np.int8)]:
  X=rng.integers(0,100,(1,4,6,6)).astype(xdt); W=rng.integers(-20 if wdt==np.int8 else 0,20,(6,2,3,3)).astype(wdt)
  xz=np.array(5,xdt); wz=np.arange(6).astype(wdt)
  want=F.conv2d(torch.tensor(X.astype(np.float64)-5),torch.tensor(W.astype(np.float64)-np.arange(6).reshape(6,1,1,1)),padding=1,stride=2,groups=2).numpy()
  g,e=run('ConvInteger',[X,W,xz,wz],dict(pads=[1,1,1,1],strides=[2,2],group=2),opset=10); check('ConvInteger %s %s'%(xdt.__name__,wdt.__name__),g,e,want.astype(np.int32))
  xs=np.array(0.05,np.float32); ws=(rng.random(6)*0.1).astype(np.float32); ys=np.array(0.7,np.float32); yz=np.array(10,xdt); B=rng.integers(-50,50,6).astype(np.int32)
  acc=want+B.reshape(1,6,1,1)
  wantq=q(acc*(xs*ws.reshape(1,6,1,1)/ys)+10, xdt)
  g,e=run('QLinearConv',[X,xs,xz,W,ws,wz,ys,yz,B],dict(pads=[1,1,1,1],strides=[2,2],group=2),opset=10)
  check('QLinearConv %s %s'%(xdt.__name__,wdt.__name__),g,e,wantq)
  A=rng.integers(0,100,(2,3,4)).astype(xdt); Bm=rng.integers(0,100,(4,5)).astype(wdt)
  az=np.array([1,2,3],xdt); bz=np.arange(5).astype(wdt)
  want=np.matmul(A.astype(np.int64)-az.reshape(3,1),Bm.astype(np.int64)-bz).astype(np.int32)
  g,e=run('MatMulInteger',[A,Bm,az,bz],{},opset=10); check('MatMulInteger',g,e,want)
  g,e=run('MatMulInteger',[A,Bm],{},opset=10); check('MatMulInteger nozp',g,e,np.matmul(A.astype(np.int32),Bm.astype(np.int32)))
print(cnt)
sys.exit(0 if cnt[0] == cnt[1] else 1)
